# The agent's version (INFO / STATUS report field 14, agent.version): what a bundle's agent tree
# says it is. tools/build_mpy.py compiles this file like every other; a bundle may carry its own
# (host/ecusim/bundle.py: agent_tree(version=...)).
VERSION = "0.11.0"
