"""The cloud target's post-deploy stage: run the benchmark on the k6 EC2 runner, pull the results."""
