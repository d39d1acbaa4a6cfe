"""First-stage fusion networks, the diffusion refiner, its schedules and samplers."""
