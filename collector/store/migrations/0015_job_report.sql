-- jobs.report: the built-in optimizer's report of a job (issue 15,
-- docs/optimize.md), JSON; empty for the jobs of the command and webhook
-- executors and for jobs that have not finished. The admin API answers it
-- as the job's "report" (GET /v1/jobs/{id}); `droverctl jobs show` prints
-- it. Rows written before this migration read it as empty.
ALTER TABLE {{local "jobs"}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS report String CODEC(ZSTD(3)) AFTER spec;
{{if cluster}}
ALTER TABLE {{db}}.jobs {{on_cluster}}
    ADD COLUMN IF NOT EXISTS report String AFTER spec;
{{end}}
