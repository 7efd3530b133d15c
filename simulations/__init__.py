"""The simulator: replay real traffic through the same decision code and an exact
emulation of the Kubernetes HPA controller, with pods that take time to start.
"""
