"""The mesh protocol: contracts, bids, award, delivery, validation, settlement and disputes."""
