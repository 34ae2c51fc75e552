"""Helpers the tests (and bench/) import; fixtures live in tests/fixtures/, tests only in test_*.py.

- serving: `loraforge` subprocesses on loopback: their environment, free ports, /healthz, stopping.
- processes: `loraforge serve` / `worker` processes with fast leases for crash and fleet tests.
- cli: `loraforge` CLI runs, small image folders, one image from a tiny pipeline.
- flow: datasets, submit bodies and waiting for a job's status through the pipeline.
- pipeline_http: the seed endpoints' HTTP steps on the in-process ApiClient.
- seed_requests: the seeds' request bodies and the upload every submit needs.
- samples: images in every awkward mode and ZIPs, honest or hostile.
- abuse_server: a real `loraforge serve` with two keys and raw sockets, for the abuse tests.
- datasets_host: loopback hosts serving a dataset ZIP or trickling their headers.
- loras: random LoRA files on the tiny transformers.
"""
