"""Money: a double-entry credit ledger with escrow holds, payments and payouts."""
