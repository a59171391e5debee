-- model_versions (0003) was never written: the model registry's records live
-- in registry_versions (0009, collector/registry), which the admin API's
-- views read too. Drop it. In cluster mode the Distributed table goes before
-- the local tables it reads. IF EXISTS: applied again, it does nothing.
{{if cluster -}}
DROP TABLE IF EXISTS {{db}}.model_versions {{on_cluster}};
{{end -}}
DROP TABLE IF EXISTS {{local "model_versions"}} {{on_cluster}};
