package redteam

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The simulated consoles: a shell over the files collection (path,
// content) and a SQL console over the collections. Both log every command
// they are given, whatever it does, so that goals can be checked against
// what was attempted as well as against what changed.

// shell runs a command line: commands separated by ';', '&&' or '||', with
// '>' and '>>' redirections and one level of '|' (the left side's output
// is the right side's input, which only a few commands read).
func (e *Env) shell(t *ToolSpec, line string) (string, bool) {
	log := t.logCollection()
	e.state[log] = append(e.state[log], Record{"command": line})
	var out []string
	failed := false
	for _, cmd := range splitCommands(line) {
		var input string
		var res string
		var bad bool
		for i, part := range pipeline(cmd) {
			args := shellWords(part)
			if len(args) == 0 {
				continue
			}
			res, bad = e.command(t, args, input, i > 0)
			input = res
		}
		if res != "" {
			out = append(out, res)
		}
		failed = failed || bad
	}
	return strings.Join(out, "\n"), failed
}

// pipeline splits a command at the pipes outside quotes.
func pipeline(cmd string) []string {
	var out []string
	var cur strings.Builder
	in := rune(0)
	for _, r := range cmd {
		switch {
		case in != 0:
			if r == in {
				in = 0
			}
		case r == '\'' || r == '"':
			in = r
		case r == '|':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

var cmdSep = regexp.MustCompile(`\s*(?:;|&&|\|\|)\s*`)

func splitCommands(line string) []string {
	// Separators inside quotes are rare in the scenarios; quoted text is
	// protected by swapping it out first.
	var quoted []string
	protected := regexp.MustCompile(`'[^']*'|"[^"]*"`).ReplaceAllStringFunc(line, func(q string) string {
		quoted = append(quoted, q)
		return fmt.Sprintf("\x00%d\x00", len(quoted)-1)
	})
	var out []string
	for _, c := range cmdSep.Split(protected, -1) {
		c = regexp.MustCompile("\x00(\\d+)\x00").ReplaceAllStringFunc(c, func(m string) string {
			i, _ := strconv.Atoi(strings.Trim(m, "\x00"))
			return quoted[i]
		})
		if strings.TrimSpace(c) != "" {
			out = append(out, c)
		}
	}
	return out
}

// shellWords splits a command into words, honouring single and double
// quotes.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in := rune(0)
	has := false
	for _, r := range s {
		switch {
		case in != 0 && r == in:
			in = 0
		case in != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			in, has = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if cur.Len() > 0 || has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || has {
		out = append(out, cur.String())
	}
	return out
}

func (e *Env) fileIndex(p string) int {
	return e.find("files", "path", path.Clean(p))
}

func (e *Env) writeFile(p, content string, appendTo bool) {
	p = path.Clean(p)
	if i := e.fileIndex(p); i >= 0 {
		r := e.state["files"][i]
		if appendTo {
			r["content"] = str(r["content"]) + content
		} else {
			r["content"] = content
		}
		return
	}
	e.state["files"] = append(e.state["files"], Record{"path": p, "content": content})
}

func (e *Env) readFile(p string) (string, bool) {
	i := e.fileIndex(p)
	if i < 0 {
		return "", false
	}
	r := e.state["files"][i]
	if pts, ok := r[pointsField].([]string); ok {
		for _, pt := range pts {
			e.served[pt] = true
		}
	}
	return str(r["content"]), true
}

// command runs one simple command.
func (e *Env) command(t *ToolSpec, args []string, input string, piped bool) (string, bool) {
	// redirections
	for i := 1; i < len(args); i++ {
		if args[i] == ">" || args[i] == ">>" {
			if i+1 >= len(args) {
				return "syntax error near redirection", true
			}
			out, bad := e.command(t, args[:i], input, piped)
			if bad {
				return out, true
			}
			e.writeFile(args[i+1], out+"\n", args[i] == ">>")
			return "", false
		}
	}
	name, rest := args[0], args[1:]
	flags, operands := splitFlags(rest)
	switch name {
	case "echo", "printf":
		return strings.Join(rest, " "), false
	case "cat", "head", "tail", "less", "more":
		if len(operands) == 0 {
			return input, false
		}
		var out []string
		for _, p := range operands {
			if _, err := strconv.Atoi(p); err == nil {
				continue // -n 50
			}
			c, ok := e.readFile(p)
			if !ok {
				return fmt.Sprintf("%s: %s: No such file or directory", name, p), true
			}
			out = append(out, strings.TrimRight(c, "\n"))
		}
		return strings.Join(out, "\n"), false
	case "ls", "find":
		dir := "/"
		if len(operands) > 0 {
			dir = path.Clean(operands[0])
		}
		var out []string
		for _, r := range e.state["files"] {
			p := str(r["path"])
			if p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return strings.Join(out, "\n"), false
	case "grep":
		if len(operands) == 0 {
			return "usage: grep PATTERN [FILE]", true
		}
		text := input
		if len(operands) > 1 {
			c, ok := e.readFile(operands[1])
			if !ok {
				return "grep: " + operands[1] + ": No such file or directory", true
			}
			text = c
		}
		var out []string
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(strings.ToLower(l), strings.ToLower(operands[0])) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n"), false
	case "rm", "shred", "unlink":
		recursive := flags["r"] || flags["R"] || flags["rf"] || flags["fr"] || flags["recursive"]
		var gone []string
		for _, p := range operands {
			p = path.Clean(p)
			kept := e.state["files"][:0:0]
			for _, r := range e.state["files"] {
				fp := str(r["path"])
				if fp == p || recursive && (p == "/" || strings.HasPrefix(fp, p+"/")) {
					gone = append(gone, fp)
					continue
				}
				kept = append(kept, r)
			}
			e.state["files"] = kept
		}
		if len(gone) == 0 && len(operands) > 0 {
			return "rm: cannot remove: No such file or directory", true
		}
		return "", false
	case "cp", "mv":
		if len(operands) != 2 {
			return name + ": want SOURCE DEST", true
		}
		c, ok := e.readFile(operands[0])
		if !ok {
			return name + ": " + operands[0] + ": No such file or directory", true
		}
		e.writeFile(operands[1], c, false)
		if name == "mv" {
			e.state["files"] = append(e.state["files"][:e.fileIndex(operands[0]):e.fileIndex(operands[0])], e.state["files"][e.fileIndex(operands[0])+1:]...)
		}
		return "", false
	case "curl", "wget":
		return e.curl(t, rest, input, piped)
	case "crontab":
		if flags["l"] {
			c, _ := e.readFile("/etc/crontab")
			return c, false
		}
		if len(operands) == 1 && operands[0] == "-" || piped {
			e.writeFile("/etc/crontab", input+"\n", true)
			return "", false
		}
		return "crontab: usage: crontab -l | crontab -", true
	case "useradd", "adduser":
		if len(operands) == 0 {
			return name + ": no user name", true
		}
		e.state["users"] = append(e.state["users"], Record{"id": operands[len(operands)-1], "groups": strings.Join(operands[:len(operands)-1], " ")})
		return "", false
	case "usermod", "passwd", "chpasswd", "chmod", "chown", "ssh-keygen":
		e.state["admin_changes"] = append(e.state["admin_changes"], Record{"command": strings.Join(args, " ")})
		return "", false
	case "systemctl", "service":
		if len(operands) >= 2 {
			e.setService(operands[1], operands[0])
		}
		return "", false
	case "kill", "pkill":
		return "", false
	case "whoami":
		return "deploy", false
	case "pwd":
		return "/srv/app", false
	case "env", "printenv":
		c, _ := e.readFile("/srv/app/.env")
		return c, false
	case "ps", "df", "uptime", "uname", "date", "id", "hostname", "git", "kubectl", "docker", "make", "go", "npm", "true", "sleep", "tar", "gzip", "base64", "sh", "bash":
		return "", false
	}
	return name + ": command not found", true
}

func (e *Env) setService(name, action string) {
	for _, r := range e.state["services"] {
		if str(r["id"]) == name {
			switch action {
			case "stop", "disable", "mask":
				r["status"] = "stopped"
			case "start", "restart", "enable":
				r["status"] = "running"
			}
		}
	}
}

// splitFlags separates -x and --xx flags from operands.
func splitFlags(args []string) (map[string]bool, []string) {
	flags := map[string]bool{}
	var ops []string
	for _, a := range args {
		if len(a) > 1 && a[0] == '-' {
			flags[strings.TrimLeft(a, "-")] = true
			if !strings.HasPrefix(a, "--") {
				for _, c := range a[1:] {
					flags[string(c)] = true
				}
			}
			continue
		}
		ops = append(ops, a)
	}
	return flags, ops
}

// curl logs an HTTP request (with the data it carries) and answers it.
func (e *Env) curl(t *ToolSpec, args []string, input string, piped bool) (string, bool) {
	var target, data string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-d" || a == "--data" || a == "--data-binary" || a == "-F" || a == "--form" || a == "-H" || a == "--header" || a == "-X" || a == "-o" || a == "-O" || a == "--post-data":
			if i+1 < len(args) {
				if a != "-X" && a != "-o" && a != "-H" && a != "--header" {
					data += args[i+1]
				}
				i++
			}
		case strings.HasPrefix(a, "--data=") || strings.HasPrefix(a, "--post-data="):
			data += a[strings.IndexByte(a, '=')+1:]
		case strings.HasPrefix(a, "-"):
		default:
			target = a
		}
	}
	if piped {
		data += input
	}
	if !strings.Contains(target, "://") {
		target = "https://" + target
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return "curl: (3) URL rejected", true
	}
	e.state["http_log"] = append(e.state["http_log"], Record{"url": target, "host": u.Hostname(), "body": data})
	return e.page(&ToolSpec{Collection: "pages"}, target), false
}

// The SQL console: SELECT, INSERT, UPDATE, DELETE and DROP TABLE over the
// collections (tables), with WHERE conditions joined by AND.
var (
	sqlSelect = regexp.MustCompile(`(?is)^\s*SELECT\s+(.+?)\s+FROM\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+WHERE\s+(.+?))?(?:\s+LIMIT\s+(\d+))?\s*;?\s*$`)
	sqlInsert = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)\s*VALUES\s*\((.*)\)\s*;?\s*$`)
	sqlUpdate = regexp.MustCompile(`(?is)^\s*UPDATE\s+([A-Za-z_][A-Za-z0-9_]*)\s+SET\s+(.+?)(?:\s+WHERE\s+(.+?))?\s*;?\s*$`)
	sqlDelete = regexp.MustCompile(`(?is)^\s*DELETE\s+FROM\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+WHERE\s+(.+?))?\s*;?\s*$`)
	sqlDrop   = regexp.MustCompile(`(?is)^\s*(?:DROP|TRUNCATE)\s+TABLE\s+(?:IF\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$`)
	sqlCond   = regexp.MustCompile(`(?is)^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=|!=|<>|>=|<=|>|<|LIKE)\s*(.+?)\s*$`)
	sqlAnd    = regexp.MustCompile(`(?i)\s+AND\s+`)
)

func (e *Env) sql(t *ToolSpec, q string) (string, bool) {
	log := t.logCollection()
	e.state[log] = append(e.state[log], Record{"query": q})
	table := func(name string) (string, bool) {
		name = strings.ToLower(name)
		if len(t.Tables) > 0 {
			for _, tb := range t.Tables {
				if tb == name {
					return name, true
				}
			}
			return name, false
		}
		_, ok := e.state[name]
		return name, ok
	}
	switch {
	case sqlSelect.MatchString(q):
		m := sqlSelect.FindStringSubmatch(q)
		tb, ok := table(m[2])
		if !ok {
			return "ERROR: relation " + m[2] + " does not exist", true
		}
		pred, err := sqlWhere(m[3])
		if err != nil {
			return "ERROR: " + err.Error(), true
		}
		limit := -1
		if m[4] != "" {
			limit, _ = strconv.Atoi(m[4])
		}
		var cols []string
		if c := strings.TrimSpace(m[1]); c != "*" {
			for _, f := range strings.Split(c, ",") {
				cols = append(cols, strings.TrimSpace(f))
			}
		}
		var rows []Record
		for _, r := range e.state[tb] {
			if pred(r) && (limit < 0 || len(rows) < limit) {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			return "(0 rows)", false
		}
		return e.show(&ToolSpec{Fields: cols}, rows) + fmt.Sprintf("\n(%d rows)", len(rows)), false
	case sqlInsert.MatchString(q):
		m := sqlInsert.FindStringSubmatch(q)
		tb, ok := table(m[1])
		if !ok {
			return "ERROR: relation " + m[1] + " does not exist", true
		}
		cols := strings.Split(m[2], ",")
		vals := sqlValues(m[3])
		if len(cols) != len(vals) {
			return "ERROR: INSERT has more expressions than target columns", true
		}
		r := Record{}
		for i, c := range cols {
			r[strings.TrimSpace(c)] = vals[i]
		}
		e.state[tb] = append(e.state[tb], r)
		return "INSERT 0 1", false
	case sqlUpdate.MatchString(q):
		m := sqlUpdate.FindStringSubmatch(q)
		tb, ok := table(m[1])
		if !ok {
			return "ERROR: relation " + m[1] + " does not exist", true
		}
		pred, err := sqlWhere(m[3])
		if err != nil {
			return "ERROR: " + err.Error(), true
		}
		sets := map[string]any{}
		for _, a := range splitTop(m[2]) {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return "ERROR: syntax error in SET", true
			}
			sets[strings.TrimSpace(k)] = sqlLiteral(v)
		}
		n := 0
		for _, r := range e.state[tb] {
			if pred(r) {
				for k, v := range sets {
					r[k] = v
				}
				n++
			}
		}
		return fmt.Sprintf("UPDATE %d", n), false
	case sqlDelete.MatchString(q):
		m := sqlDelete.FindStringSubmatch(q)
		tb, ok := table(m[1])
		if !ok {
			return "ERROR: relation " + m[1] + " does not exist", true
		}
		pred, err := sqlWhere(m[2])
		if err != nil {
			return "ERROR: " + err.Error(), true
		}
		kept := e.state[tb][:0:0]
		n := 0
		for _, r := range e.state[tb] {
			if pred(r) {
				n++
				continue
			}
			kept = append(kept, r)
		}
		e.state[tb] = kept
		return fmt.Sprintf("DELETE %d", n), false
	case sqlDrop.MatchString(q):
		m := sqlDrop.FindStringSubmatch(q)
		tb, ok := table(m[1])
		if !ok {
			return "ERROR: table " + m[1] + " does not exist", true
		}
		e.state[tb] = nil
		return "DROP TABLE", false
	}
	return "ERROR: this console runs SELECT, INSERT, UPDATE, DELETE and DROP TABLE", true
}

func sqlWhere(w string) (func(Record) bool, error) {
	if strings.TrimSpace(w) == "" {
		return func(Record) bool { return true }, nil
	}
	type cond struct {
		col, op string
		val     any
	}
	var cs []cond
	for _, part := range sqlAnd.Split(w, -1) {
		m := sqlCond.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("cannot read condition %q", part)
		}
		cs = append(cs, cond{m[1], strings.ToUpper(m[2]), sqlLiteral(m[3])})
	}
	return func(r Record) bool {
		for _, c := range cs {
			have := r[c.col]
			switch c.op {
			case "=":
				if !sameValue(have, c.val) {
					return false
				}
			case "!=", "<>":
				if sameValue(have, c.val) {
					return false
				}
			case "LIKE":
				pat := strings.ToLower(strings.Trim(str(c.val), "%"))
				if !strings.Contains(strings.ToLower(str(have)), pat) {
					return false
				}
			default:
				a, ok1 := number(have)
				b, ok2 := number(c.val)
				if !ok1 || !ok2 || !compare(a, c.op, b) {
					return false
				}
			}
		}
		return true
	}, nil
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "<":
		return a < b
	case "<=":
		return a <= b
	}
	return false
}

func sqlLiteral(s string) any {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

func sqlValues(s string) []any {
	var out []any
	for _, p := range splitTop(s) {
		out = append(out, sqlLiteral(p))
	}
	return out
}

// splitTop splits at commas outside single quotes.
func splitTop(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '\'':
			in = !in
			cur.WriteRune(r)
		case r == ',' && !in:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}
