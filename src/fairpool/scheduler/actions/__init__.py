"""The scheduler's actions, run in order each cycle: allocate → consolidate → reclaim → preempt."""
