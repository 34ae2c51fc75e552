"""Guarded outbound HTTP: the one way loraforge reaches a URL a user handed it.

`guard` decides which addresses may be reached (the SSRF guard); `client.GuardedClient` resolves
a URL once, checks every address, connects to the address it checked, ignores proxy variables,
re-checks each redirect hop it follows and bounds every exchange by a total deadline. Dataset
downloads and webhook deliveries both go through it.
"""
