"""The fast mock's EKS files (components/fast_mock.py: nginx.conf rendered for OpenResty, settings.json
read from the ConfigMap) served by a real nginx + ngx_lua here: the same answers as the local mock,
the pacing of the profile in settings.json, and a settings change taking effect on restart."""

from __future__ import annotations

import json
import time

import httpx

from aigw_bench.local.ports import free_port
from aigw_bench.local.processes import Supervisor
from components.fast_mock import config_files
from schema.mock import load_contract, load_mock, load_profile
from tests.cloud_fakes import run_pod_files_locally

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def eks_files(profile):
    mock = load_mock("fast")
    return config_files(mock, mock.deployment, profile, cpu=1)


def test_eks_files_answer_the_contract_bytes_and_refuse_bad_input(tmp_path, no_leftovers):
    with Supervisor() as sup:
        _, base = run_pod_files_locally(sup, eks_files(load_profile("instant")), tmp_path / "pod", free_port())
        with httpx.Client(timeout=5, trust_env=False) as client:
            ok = client.post(base + "/v1/chat/completions", content=BODY)
            assert ok.status_code == 200 and ok.text == load_contract().completion_body()
            bad = client.post(base + "/v1/chat/completions", content="not json")
            assert bad.status_code == 400 and "error" in bad.json()


def test_the_profile_comes_from_settings_json_and_a_restart_applies_a_new_one(tmp_path, no_leftovers):
    paced = load_profile("llm").model_copy(update={"output_tokens": 4, "ttft_ms": 300, "per_token_ms": 20})
    with Supervisor() as sup:
        proc, base = run_pod_files_locally(sup, eks_files(paced), tmp_path / "pod", free_port())
        stream = json.loads(BODY) | {"stream": True}
        with httpx.Client(timeout=10, trust_env=False) as client:
            started = time.perf_counter()
            with client.stream("POST", base + "/v1/chat/completions", json=stream) as resp:
                first = None
                events = []
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        first = first or time.perf_counter() - started
                        events.append(line)
            assert resp.status_code == 200
            assert events[-1] == "data: [DONE]"
            chunks = [json.loads(e[5:]) for e in events[:-1]]
            content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
            assert len(content) == 4  # output_tokens of the settings
            assert 0.3 <= first < 0.6  # ttft_ms of the settings
        # The same pod files with the instant profile's settings, after a restart: no pacing.
        sup.stop(proc)
        port = int(base.rsplit(":", 1)[1])
        _, base = run_pod_files_locally(sup, eks_files(load_profile("instant")), tmp_path / "pod", port)
        with httpx.Client(timeout=5, trust_env=False) as client:
            started = time.perf_counter()
            assert client.post(base + "/v1/chat/completions", content=BODY).status_code == 200
            assert time.perf_counter() - started < 0.1
