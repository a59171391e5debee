package chembed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// serverConfig is a complete, self-contained configuration for
// `clickhouse server`: every path under the data directory, only the native
// and HTTP listeners on loopback, and a passwordless default user restricted
// to loopback. Nothing under /etc or /var is touched.
var serverConfig = template.Must(template.New("config.xml").Parse(`<clickhouse>
    <logger>
        <level>warning</level>
        <console>1</console>
    </logger>
    <listen_host>{{.ListenHost}}</listen_host>
    <tcp_port>{{.TCPPort}}</tcp_port>
    <http_port>{{.HTTPPort}}</http_port>
    <path>{{.Dir}}/</path>
    <tmp_path>{{.Dir}}/tmp/</tmp_path>
    <user_files_path>{{.Dir}}/user_files/</user_files_path>
    <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
    <user_directories>
        <users_xml><path>{{.Dir}}/conf/users.xml</path></users_xml>
        <local_directory><path>{{.Dir}}/access/</path></local_directory>
    </user_directories>
    <mark_cache_size>268435456</mark_cache_size>
    <max_server_memory_usage_to_ram_ratio>0.5</max_server_memory_usage_to_ram_ratio>
</clickhouse>
`))

var usersConfig = `<clickhouse>
    <profiles><default/></profiles>
    <quotas><default/></quotas>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>1</access_management>
        </default>
    </users>
</clickhouse>
`

// writeServerConfig writes config.xml and users.xml under DataDir/conf and
// returns the path of config.xml.
func writeServerConfig(cfg Config) (string, error) {
	if strings.ContainsAny(cfg.DataDir, "<>&\"'") {
		return "", fmt.Errorf("chembed: data dir %q has characters that cannot go into the server's XML config", cfg.DataDir)
	}
	confDir := filepath.Join(cfg.DataDir, "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", fmt.Errorf("chembed: create %s: %w", confDir, err)
	}
	var b strings.Builder
	err := serverConfig.Execute(&b, struct {
		Dir, ListenHost   string
		TCPPort, HTTPPort int
	}{cfg.DataDir, cfg.ListenHost, cfg.TCPPort, cfg.HTTPPort})
	if err != nil {
		return "", fmt.Errorf("chembed: render server config: %w", err)
	}
	conf := filepath.Join(confDir, "config.xml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("chembed: write %s: %w", conf, err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "users.xml"), []byte(usersConfig), 0o644); err != nil {
		return "", fmt.Errorf("chembed: write users.xml: %w", err)
	}
	return conf, nil
}
