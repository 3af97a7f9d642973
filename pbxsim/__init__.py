"""pbxsim: a protocol-faithful Asterisk stand-in (AMI server, FastAGI and AudioSocket client,
simulated customers). Independent of the daemon's code. See docs/pbxsim.md."""

from pbxsim.records import AgiExchange, CallRecord, Transfer
from pbxsim.scenario import Scenario, ScenarioError, load_scenario
from pbxsim.sim import FaultConfig, PbxSim, SimConfig

__all__ = [
    "AgiExchange",
    "CallRecord",
    "FaultConfig",
    "PbxSim",
    "Scenario",
    "ScenarioError",
    "SimConfig",
    "Transfer",
    "load_scenario",
]
