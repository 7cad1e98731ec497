"""An emulator of Azure AD's token endpoint, the legacy custom TI API and the MDE Indicators API,
with seeded fault injection; tests, benchmarks and the demo run against it.

It imports nothing else from ``importer``: it emulates the contract, not our code.
"""

from importer.emulator.config import DEMO_CLIENT, ClientApp, EmulatorConfig, Faults
from importer.emulator.server import Emulator, running_emulator

__all__ = ["DEMO_CLIENT", "ClientApp", "Emulator", "EmulatorConfig", "Faults", "running_emulator"]
