"""Stand-in for imageio >= 2.16, of which MSight uses only `imageio.v3.imwrite` (Debian's imageio is 2.4, no v3)."""
