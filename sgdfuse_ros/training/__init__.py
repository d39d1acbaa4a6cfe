"""Training of the learned stages (``sgdfuse train first-stage|refiner``), on TRAIN pairs only."""
