"""The trading engine: clock -> orders -> broker (fills, costs) -> ledger, driven by the heartbeat loop."""
