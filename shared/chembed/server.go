package chembed

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// User is the engine's user for every client: the collector, droverctl,
// Grafana. Its password is generated on the first start (see PasswordFile).
const User = "drover"

// PasswordFileName is the file in the data directory that holds User's
// password (mode 0600), written on the first start and read on every later
// one.
const PasswordFileName = "password"

// serverConfig is a complete, self-contained configuration for
// `clickhouse server`: every path under the data directory, only the native
// and HTTP listeners on loopback, users from users.xml. Nothing under /etc or
// /var is touched.
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

// localConfig is the chdb (clickhouse-local) configuration: only where the
// users are.
var localConfig = template.Must(template.New("local.xml").Parse(`<clickhouse>
    <users_config>{{.Dir}}/conf/users.xml</users_config>
</clickhouse>
`))

// usersConfig has User with the generated password's SHA-256, from loopback
// only. The chdb engine's own session (the one that opens the listeners)
// always authenticates as a passwordless `default` from what ClickHouse
// takes for loopback, so that user exists in chdb mode, but holds only what
// that session needs: SYSTEM LISTEN and reading system.numbers (its last
// query). A loopback client that logs in as default can therefore run
// SELECT 1 and stop the listeners (which the watchdog repairs), nothing
// else: no table, no file, no user.
var usersConfig = template.Must(template.New("users.xml").Parse(`<clickhouse>
    <profiles><default/></profiles>
    <quotas><default/></quotas>
    <users>
{{- if .LocalDefault}}
        <default>
            <no_password/>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <grants>
                <query>GRANT SYSTEM LISTEN ON *.*</query>
                <query>GRANT SELECT ON system.numbers</query>
            </grants>
        </default>
{{- end}}
        <{{.User}}>
            <password_sha256_hex>{{.Hash}}</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>1</access_management>
        </{{.User}}>
    </users>
</clickhouse>
`))

func checkXMLPath(dir string) error {
	if strings.ContainsAny(dir, "<>&\"'") {
		return fmt.Errorf("chembed: data dir %q has characters that cannot go into the engine's XML config", dir)
	}
	return nil
}

func render(t *template.Template, path string, mode os.FileMode, data any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("chembed: create %s: %w", filepath.Dir(path), err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("chembed: render %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, []byte(b.String()), mode); err != nil {
		return fmt.Errorf("chembed: write %s: %w", path, err)
	}
	// WriteFile keeps an existing file's mode.
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chembed: chmod %s: %w", path, err)
	}
	return nil
}

// writeServerConfig writes config.xml under DataDir/conf and returns its
// path.
func writeServerConfig(cfg Config) (string, error) {
	if err := checkXMLPath(cfg.DataDir); err != nil {
		return "", err
	}
	conf := filepath.Join(cfg.DataDir, "conf", "config.xml")
	return conf, render(serverConfig, conf, 0o644, struct {
		Dir, ListenHost   string
		TCPPort, HTTPPort int
	}{cfg.DataDir, cfg.ListenHost, cfg.TCPPort, cfg.HTTPPort})
}

// writeLocalConfig writes the chdb engine's config file and returns its
// path.
func writeLocalConfig(cfg Config) (string, error) {
	if err := checkXMLPath(cfg.DataDir); err != nil {
		return "", err
	}
	conf := filepath.Join(cfg.DataDir, "conf", "local.xml")
	return conf, render(localConfig, conf, 0o644, struct{ Dir string }{cfg.DataDir})
}

// writeUsersConfig writes DataDir/conf/users.xml (0600: it holds the
// password's hash).
func writeUsersConfig(cfg Config, mode Mode, password string) error {
	sum := sha256.Sum256([]byte(password))
	return render(usersConfig, filepath.Join(cfg.DataDir, "conf", "users.xml"), 0o600, struct {
		User, Hash   string
		LocalDefault bool
	}{User, hex.EncodeToString(sum[:]), mode == ModeCHDB})
}

func passwordPath(dataDir string) string { return filepath.Join(dataDir, PasswordFileName) }

// loadPassword reads User's password from the data directory, or generates
// one (128 random bits, hex) and writes it there with mode 0600. A file that
// others can read is made private again, with a warning.
func loadPassword(dataDir string, log *slog.Logger) (string, error) {
	path := passwordPath(dataDir)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("chembed: %s is empty; remove it to have a new password generated", path)
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			log.Warn("clickhouse password file was readable by others; made private", "path", path, "mode", st.Mode().Perm().String())
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("chembed: chmod %s: %w", path, err)
			}
		}
		return pw, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("chembed: read password: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("chembed: generate password: %w", err)
	}
	pw := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("chembed: create password file: %w", err)
	}
	if _, err := f.WriteString(pw + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("chembed: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("chembed: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("chembed: close %s: %w", path, err)
	}
	log.Info("clickhouse engine password generated", "user", User, "file", path)
	return pw, nil
}
