# Hydra configs; shipped as package hessdyn.conf
