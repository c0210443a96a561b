"""What acts and learns: CMA-ES over controllers (pycma, serial or Ray evaluators) and controller evaluation."""
