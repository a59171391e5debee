// Package deploytest checks the deployment files under deploy/ (Dockerfiles,
// the compose file, the Kubernetes manifests, the systemd units) by parsing
// them with the parsers their tools use: nothing here can run a container
// engine, Kubernetes or systemd. Every flag the files pass to a binary is
// compared with that binary's --help, every port with the address flags it
// listens on, every health check and probe with the real route tables
// (agent/serve.PublicRoutes, collector/admin.Routes), and every
// configuration file they mount is decoded by the binaries' own strict
// configuration parsers. The package has only tests.
package deploytest
