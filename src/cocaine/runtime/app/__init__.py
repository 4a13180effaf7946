"""Apps: lifecycle, engine (queue and pool), slaves, profiles, manifests, crashlogs."""
