"""The ground floor: the shape of every data folder and of a run directory.

Errors, templating, the gateway catalog (with its typed cloud section), the mock's definition and
contract, scenarios and suites, the results format (outcomes, step records, the versioned run
manifest) and k6's file conventions. Every other package stands on this one; this one imports
nothing else of the project (tests/test_layers.py states the rule).
"""
