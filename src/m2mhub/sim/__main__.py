"""``python -m m2mhub.sim > my-fleet.yaml``: print the shipped fleet to copy and edit."""

import sys

from m2mhub.sim.fleet import default_fleet_text

sys.stdout.write(default_fleet_text())
