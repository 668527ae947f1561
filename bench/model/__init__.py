"""The network alone: SA's cost per engine, INT8 fidelity."""
