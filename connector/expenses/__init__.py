"""Non-ad costs: the ledger (every decision with who, when and why), the approval rules and
the CSV import."""
