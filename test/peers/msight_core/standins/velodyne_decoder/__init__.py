"""Import-only stand-in for velodyne-decoder (MSight's lidar node, which these tests do not run)."""
