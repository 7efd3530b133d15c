"""Pure policy code: demand to replicas, the price model, budgets and the cost guard.

No I/O and no wall clock; imports only ``models`` types.
"""
