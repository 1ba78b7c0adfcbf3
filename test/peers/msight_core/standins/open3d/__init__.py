"""Import-only stand-in for open3d (MSight's point-cloud viewer, which these tests do not run)."""
