"""ptjf.launch: experiment plans (PTJF, scalarization, restart) and their execution."""
