"""TEST DOUBLE: the run-time device choice of each recorded version (see ../../README.md)."""
