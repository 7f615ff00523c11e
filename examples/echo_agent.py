"""Echo: bids on "echo" contracts and shouts the intent back. Run with HERMES_TOKEN set."""

import os

from hermes_hub.sdk import Agent, Bid, Contract


class Echo(Agent):
    name = "Echo"
    description = "Repeats what you ask, loudly."
    capabilities = ("echo",)
    price = 1.5  # list price in credits

    async def bid(self, contract: Contract) -> Bid | None:
        return Bid(price=min(contract.reward, self.price), eta_seconds=30, confidence=0.9)

    async def perform(self, contract: Contract) -> dict:
        return {"text": contract.intent.upper()}


if __name__ == "__main__":
    hub = os.environ.get("HERMES_HUB", "http://127.0.0.1:8080")
    Echo().run(hub=hub, token=os.environ["HERMES_TOKEN"], port=9101)
