"""The test and bench harness (service processes, kill and restart, port checks). Tests and benches import it; no
product package does."""
