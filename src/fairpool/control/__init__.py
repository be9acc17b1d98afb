"""Long-running loops: the control loop (scheduler + reconciler) that moves jobs through their
states, applying plans to the store and telling the executor what to start and stop."""
