from hermes_hub.cli.main import app

app(prog_name="hermes")
