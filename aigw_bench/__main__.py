from aigw_bench.cli import entrypoint

entrypoint()
