"""The worker: runs one job in a supervised child process and turns the child's reports into state.

`job_run.run_job` takes the lease, starts or hands the job to a child (`processes`), and handles
each report the child sends (`report_handlers`) on its own thread: database writes, uploads, status
changes. The child itself (`worker.child`) does the GPU work and touches neither the database nor
the store. The layers and the life of a job are in docs/architecture.md.
"""
