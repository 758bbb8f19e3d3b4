"""Device meshes, sharding rules and multi-host start-up."""
