# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE: the run-time device choice of each recorded version (see ../../README.md)."""
