"""Imperative shell: Kafka, Faust, processes, terminal. Calls the core, holds no rules."""
