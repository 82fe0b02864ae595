"""Functional core: plain, deterministic Python with the clock passed in. No Faust, no I/O."""
