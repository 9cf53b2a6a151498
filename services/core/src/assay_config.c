/*
 * Settings tables → service structs: registers tables with their targets, resolves each
 * setting from default, file and environment (in that order of precedence), parses and
 * range-checks it, collects every problem into one error string, and collects the kafka.*
 * passthrough properties. Also renders the tables as docs/configuration.md.
 */
#include "assay_config.h"
#include "assay_err.h"
#include "assay_log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KAFKA_PREFIX    "kafka."
#define KAFKA_PROPS_ENV "ASSAY_KAFKA_PROPERTIES"

struct entry {
	const struct assay_setting *s;
	void *target;
	char *default_override; /* owned; used when has_override */
	bool has_override;
};

struct kv {
	char *key;
	char *value;
};

struct assay_config {
	struct entry *entries;
	size_t nentries;
	struct kv *kafka;
	size_t nkafka;
	char **strings; /* every string handed to a target, freed at destroy */
	size_t nstrings;
	bool loaded;
};

/* Collects "; "-separated problems into errstr; never overflows, always terminated. */
struct problems {
	char *buf;
	size_t size;
	size_t len;
	unsigned count;
};

__attribute__((format(printf, 2, 3))) static void problem(struct problems *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->count++;
	if (p->buf == NULL || p->size == 0 || p->len + 1 >= p->size)
		return;
	if (p->count > 1) {
		n = snprintf(p->buf + p->len, p->size - p->len, "; ");
		p->len += (size_t)n < p->size - p->len ? (size_t)n : p->size - p->len - 1;
	}
	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->len, p->size - p->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->len += (size_t)n < p->size - p->len ? (size_t)n : p->size - p->len - 1;
}

static struct entry *find_by_name(struct assay_config *cfg, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < cfg->nentries; i++) {
		if (strlen(cfg->entries[i].s->name) == len &&
		    memcmp(cfg->entries[i].s->name, name, len) == 0)
			return &cfg->entries[i];
	}
	return NULL;
}

static struct entry *find_by_env(struct assay_config *cfg, const char *env, size_t len)
{
	size_t i;

	for (i = 0; i < cfg->nentries; i++) {
		if (strlen(cfg->entries[i].s->env) == len &&
		    memcmp(cfg->entries[i].s->env, env, len) == 0)
			return &cfg->entries[i];
	}
	return NULL;
}

/* Decimal integer, optional sign, nothing else (no blanks, no "0x", no "1e3"). */
static int parse_int(const char *text, long long *out)
{
	const char *p = text;
	char *end;
	long long v;

	if (*p == '-' || *p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Parses text for setting s; on success stores into iv or bv. Reports with "from <source>". */
static int check_value(const struct assay_setting *s, const char *text, const char *source,
                       long long *iv, bool *bv, struct problems *p)
{
	switch (s->type) {
	case ASSAY_SETTING_STRING:
		return 0;
	case ASSAY_SETTING_INT:
		if (parse_int(text, iv) != 0) {
			problem(p, "%s: \"%s\" is not an integer (from %s)", s->name, text, source);
			return -1;
		}
		if (*iv < s->min || *iv > s->max) {
			problem(p, "%s: %lld is out of range %lld..%lld (from %s)", s->name, *iv,
			        s->min, s->max, source);
			return -1;
		}
		return 0;
	case ASSAY_SETTING_BOOL:
		if (parse_bool(text, bv) != 0) {
			problem(p, "%s: \"%s\" is not a boolean: use true or false (from %s)",
			        s->name, text, source);
			return -1;
		}
		return 0;
	}
	problem(p, "%s: unknown setting type %d", s->name, (int)s->type);
	return -1;
}

static int own_string(struct assay_config *cfg, const char *text, char **out)
{
	char **nstrings;
	char *copy;

	nstrings = realloc(cfg->strings, (cfg->nstrings + 1) * sizeof(*nstrings));
	if (nstrings == NULL)
		return -1;
	cfg->strings = nstrings;
	copy = strdup(text);
	if (copy == NULL)
		return -1;
	cfg->strings[cfg->nstrings++] = copy;
	*out = copy;
	return 0;
}

/* Sets (or replaces, keeping its position) a kafka property; key/value are copied. */
static int kafka_set(struct assay_config *cfg, const char *key, size_t keylen, const char *value,
                     size_t valuelen)
{
	struct kv *nkafka;
	char *k, *v;
	size_t i;

	v = strndup(value, valuelen);
	if (v == NULL)
		return -1;
	for (i = 0; i < cfg->nkafka; i++) {
		if (strlen(cfg->kafka[i].key) == keylen &&
		    memcmp(cfg->kafka[i].key, key, keylen) == 0) {
			free(cfg->kafka[i].value);
			cfg->kafka[i].value = v;
			return 0;
		}
	}
	k = strndup(key, keylen);
	nkafka = realloc(cfg->kafka, (cfg->nkafka + 1) * sizeof(*nkafka));
	if (k == NULL || nkafka == NULL) {
		free(k);
		free(v);
		if (nkafka != NULL)
			cfg->kafka = nkafka;
		return -1;
	}
	cfg->kafka = nkafka;
	cfg->kafka[cfg->nkafka].key = k;
	cfg->kafka[cfg->nkafka].value = v;
	cfg->nkafka++;
	return 0;
}

struct assay_config *assay_config_new(void)
{
	return calloc(1, sizeof(struct assay_config));
}

void assay_config_destroy(struct assay_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nentries; i++)
		free(cfg->entries[i].default_override);
	free(cfg->entries);
	for (i = 0; i < cfg->nkafka; i++) {
		free(cfg->kafka[i].key);
		free(cfg->kafka[i].value);
	}
	free(cfg->kafka);
	for (i = 0; i < cfg->nstrings; i++)
		free(cfg->strings[i]);
	free(cfg->strings);
	free(cfg);
}

int assay_config_add(struct assay_config *cfg, const struct assay_setting *table, void *target)
{
	const struct assay_setting *s;
	struct entry *nentries;
	size_t n = 0, i;

	if (cfg == NULL || table == NULL || target == NULL || cfg->loaded)
		return ASSAY_ERR_FATAL;
	for (s = table; s->name != NULL; s++) {
		if (s->env == NULL || s->description == NULL || *s->name == '\0' ||
		    strncmp(s->name, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0 ||
		    strcmp(s->env, KAFKA_PROPS_ENV) == 0 ||
		    (s->type == ASSAY_SETTING_INT && s->min > s->max))
			return ASSAY_ERR_FATAL;
		if (find_by_name(cfg, s->name, strlen(s->name)) != NULL ||
		    find_by_env(cfg, s->env, strlen(s->env)) != NULL)
			return ASSAY_ERR_FATAL;
		for (i = 0; i < n; i++) {
			if (strcmp(table[i].name, s->name) == 0 ||
			    strcmp(table[i].env, s->env) == 0)
				return ASSAY_ERR_FATAL;
		}
		n++;
	}
	nentries = realloc(cfg->entries, (cfg->nentries + n) * sizeof(*nentries));
	if (nentries == NULL && n > 0)
		return ASSAY_ERR_FATAL;
	cfg->entries = nentries;
	for (i = 0; i < n; i++) {
		cfg->entries[cfg->nentries + i] = (struct entry){.s = &table[i], .target = target};
	}
	cfg->nentries += n;
	return 0;
}

int assay_config_set_default(struct assay_config *cfg, const char *name, const char *value,
                             char *errstr, size_t errstr_size)
{
	struct problems p = {errstr, errstr_size, 0, 0};
	struct entry *e;
	long long iv;
	bool bv;
	char *copy = NULL;

	if (errstr != NULL && errstr_size > 0)
		errstr[0] = '\0';
	if (cfg == NULL || name == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "set default: no setting");
	e = find_by_name(cfg, name, strlen(name));
	if (e == NULL)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
		                  "set default: unknown setting \"%s\"", name);
	if (value != NULL) {
		if (check_value(e->s, value, "default", &iv, &bv, &p) != 0)
			return ASSAY_ERR_FATAL;
		copy = strdup(value);
		if (copy == NULL)
			return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size,
			                  "set default: out of memory");
	}
	free(e->default_override);
	e->default_override = copy;
	e->has_override = true;
	return 0;
}

/* Where each setting's text comes from during a load. */
struct resolved {
	const char *text; /* borrowed: default, file_value or envp */
	char *file_value; /* owned copy of the file's value */
	char source[80];
};

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static int read_file(struct assay_config *cfg, const char *file, struct resolved *res,
                     struct problems *p)
{
	FILE *fp;
	char *line = NULL, *key, *value, *eq;
	size_t cap = 0;
	unsigned lineno = 0;
	struct entry *e;
	char *copy;
	int rc = 0;

	fp = fopen(file, "r");
	if (fp == NULL) {
		problem(p, "cannot open config file %s: %s", file, strerror(errno));
		return 0;
	}
	while (getline(&line, &cap, fp) >= 0) {
		lineno++;
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			problem(p, "%s:%u: expected key=value", file, lineno);
			continue;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if (*key == '\0') {
			problem(p, "%s:%u: empty key", file, lineno);
			continue;
		}
		if (strncmp(key, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0) {
			if (key[strlen(KAFKA_PREFIX)] == '\0') {
				problem(p, "%s:%u: empty kafka property name", file, lineno);
				continue;
			}
			if (kafka_set(cfg, key + strlen(KAFKA_PREFIX),
			              strlen(key + strlen(KAFKA_PREFIX)), value,
			              strlen(value)) != 0) {
				rc = -1;
				break;
			}
			continue;
		}
		e = find_by_name(cfg, key, strlen(key));
		if (e == NULL) {
			problem(p, "%s:%u: unknown setting \"%s\"", file, lineno, key);
			continue;
		}
		copy = strdup(value);
		if (copy == NULL) {
			rc = -1;
			break;
		}
		free(res[e - cfg->entries].file_value); /* a repeated key: the last line wins */
		res[e - cfg->entries].file_value = copy;
		res[e - cfg->entries].text = copy;
		snprintf(res[e - cfg->entries].source, sizeof(res[0].source), "%s:%u", file,
		         lineno);
	}
	if (rc == 0 && ferror(fp))
		problem(p, "cannot read config file %s: %s", file, strerror(errno));
	free(line);
	fclose(fp);
	return rc;
}

/* "linger.ms=5,compression.type=lz4": empty items are skipped, blanks trimmed. */
static int parse_kafka_env(struct assay_config *cfg, const char *list, struct problems *p)
{
	const char *item = list, *end, *eq, *k, *ke, *v, *ve;

	while (*item != '\0') {
		end = strchr(item, ',');
		if (end == NULL)
			end = item + strlen(item);
		k = item;
		while (k < end && isspace((unsigned char)*k))
			k++;
		if (k < end) {
			eq = memchr(k, '=', (size_t)(end - k));
			if (eq == NULL || eq == k) {
				problem(p, "%s: expected property=value, got \"%.*s\"",
				        KAFKA_PROPS_ENV, (int)(end - item), item);
			} else {
				ke = eq;
				while (ke > k && isspace((unsigned char)ke[-1]))
					ke--;
				v = eq + 1;
				while (v < end && isspace((unsigned char)*v))
					v++;
				ve = end;
				while (ve > v && isspace((unsigned char)ve[-1]))
					ve--;
				if (strncmp(k, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0 &&
				    (size_t)(ke - k) > strlen(KAFKA_PREFIX))
					k += strlen(
					        KAFKA_PREFIX); /* tolerate the file's spelling */
				if (kafka_set(cfg, k, (size_t)(ke - k), v, (size_t)(ve - v)) != 0)
					return -1;
			}
		}
		item = *end == ',' ? end + 1 : end;
	}
	return 0;
}

/* Core-table rules that a single setting's type and range cannot express. */
static int finish_core(struct assay_config *cfg, struct assay_core_config *core, struct problems *p)
{
	enum assay_log_level level;
	char host[256];

	if (core->log_level != NULL && assay_log_level_parse(core->log_level, &level) != 0)
		problem(p, "log.level: \"%s\" is not a level: use debug, info, warn or error",
		        core->log_level);
	if (core->retry_backoff_max_ms < core->retry_backoff_ms)
		problem(p, "retry.backoff.max.ms: %lld is below retry.backoff.ms %lld",
		        core->retry_backoff_max_ms, core->retry_backoff_ms);
	if (core->instance_id != NULL && core->instance_id[0] == '\0') {
		if (gethostname(host, sizeof(host)) != 0) {
			problem(p, "instance.id: cannot resolve the hostname: %s", strerror(errno));
		} else {
			host[sizeof(host) - 1] = '\0';
			if (own_string(cfg, host, &core->instance_id) != 0)
				return -1;
		}
	}
	return 0;
}

int assay_config_load(struct assay_config *cfg, const char *file, char *const *envp, char *errstr,
                      size_t errstr_size)
{
	struct problems p = {errstr, errstr_size, 0, 0};
	struct resolved *res = NULL;
	const struct assay_setting *s;
	struct entry *e;
	char *const *ep;
	const char *eq;
	long long iv;
	bool bv, core_seen = false;
	size_t i;
	int rc = ASSAY_ERR_FATAL;

	if (errstr != NULL && errstr_size > 0)
		errstr[0] = '\0';
	if (cfg == NULL || cfg->loaded)
		return assay_errf(ASSAY_ERR_FATAL, errstr, errstr_size, "load configuration: %s",
		                  cfg == NULL ? "no config" : "already loaded");
	cfg->loaded = true;
	res = calloc(cfg->nentries + 1, sizeof(*res));
	if (res == NULL)
		goto oom;

	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		res[i].text = e->has_override ? e->default_override : e->s->default_value;
		snprintf(res[i].source, sizeof(res[i].source), "default");
	}
	if (file != NULL && read_file(cfg, file, res, &p) != 0)
		goto oom;
	for (ep = envp; ep != NULL && *ep != NULL; ep++) {
		eq = strchr(*ep, '=');
		if (eq == NULL)
			continue;
		if ((size_t)(eq - *ep) == strlen(KAFKA_PROPS_ENV) &&
		    memcmp(*ep, KAFKA_PROPS_ENV, strlen(KAFKA_PROPS_ENV)) == 0) {
			if (parse_kafka_env(cfg, eq + 1, &p) != 0)
				goto oom;
			continue;
		}
		e = find_by_env(cfg, *ep, (size_t)(eq - *ep));
		if (e == NULL)
			continue;
		res[e - cfg->entries].text = eq + 1;
		snprintf(res[e - cfg->entries].source, sizeof(res[0].source), "%s", e->s->env);
	}

	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		s = e->s;
		if (res[i].text == NULL) {
			problem(&p, "%s: missing required setting (file key %s or environment %s)",
			        s->name, s->name, s->env);
			continue;
		}
		if (check_value(s, res[i].text, res[i].source, &iv, &bv, &p) != 0)
			continue;
		switch (s->type) {
		case ASSAY_SETTING_STRING:
			if (own_string(cfg, res[i].text,
			               (char **)((char *)e->target + s->offset)) != 0)
				goto oom;
			break;
		case ASSAY_SETTING_INT:
			*(long long *)((char *)e->target + s->offset) = iv;
			break;
		case ASSAY_SETTING_BOOL:
			*(bool *)((char *)e->target + s->offset) = bv;
			break;
		}
	}
	for (i = 0; i < cfg->nentries; i++) {
		if (cfg->entries[i].s == &assay_core_settings[0] && !core_seen) {
			core_seen = true;
			if (finish_core(cfg, cfg->entries[i].target, &p) != 0)
				goto oom;
		}
	}
	rc = p.count == 0 ? 0 : ASSAY_ERR_FATAL;
	goto out;
oom:
	problem(&p, "load configuration: out of memory");
	rc = ASSAY_ERR_FATAL;
out:
	for (i = 0; res != NULL && i < cfg->nentries; i++)
		free(res[i].file_value);
	free(res);
	return rc;
}

size_t assay_config_kafka_count(const struct assay_config *cfg)
{
	return cfg == NULL ? 0 : cfg->nkafka;
}

void assay_config_kafka_get(const struct assay_config *cfg, size_t i, const char **key,
                            const char **value)
{
	if (cfg == NULL || i >= cfg->nkafka) {
		*key = NULL;
		*value = NULL;
		return;
	}
	*key = cfg->kafka[i].key;
	*value = cfg->kafka[i].value;
}

/* Writes text into a Markdown table cell: '|' escaped, newlines flattened. */
static void md_cell(FILE *out, const char *text)
{
	for (; *text != '\0'; text++) {
		if (*text == '|')
			fputs("\\|", out);
		else if (*text == '\n' || *text == '\r')
			fputc(' ', out);
		else
			fputc(*text, out);
	}
}

static void md_table(FILE *out, const struct assay_setting *table, size_t index)
{
	static const char *const type_names[] = {"string", "integer", "boolean"};
	const struct assay_setting *s;

	for (s = table; s->name != NULL; s++)
		;
	if (s->description != NULL)
		fprintf(out, "## %s\n\n", s->description);
	else
		fprintf(out, "## Settings table %zu\n\n", index + 1);
	fputs("| Name | Environment | Type | Default | Range | Description |\n", out);
	fputs("|---|---|---|---|---|---|\n", out);
	for (s = table; s->name != NULL; s++) {
		fprintf(out, "| `%s` | `%s` | %s | ", s->name, s->env,
		        (unsigned)s->type < 3 ? type_names[s->type] : "?");
		if (s->default_value == NULL)
			fputs("*(required)*", out);
		else if (s->default_value[0] == '\0')
			fputs("*(empty)*", out);
		else {
			fputc('`', out);
			md_cell(out, s->default_value);
			fputc('`', out);
		}
		fputs(" | ", out);
		if (s->type == ASSAY_SETTING_INT) {
			if (s->min == LLONG_MIN && s->max == LLONG_MAX)
				fputs("any", out);
			else if (s->max == LLONG_MAX)
				fprintf(out, "≥ %lld", s->min);
			else if (s->min == LLONG_MIN)
				fprintf(out, "≤ %lld", s->max);
			else
				fprintf(out, "%lld..%lld", s->min, s->max);
		} else if (s->type == ASSAY_SETTING_BOOL) {
			fputs("true, false", out);
		}
		fputs(" | ", out);
		md_cell(out, s->description);
		fputs(" |\n", out);
	}
	fputc('\n', out);
}

int assay_config_write_markdown(FILE *out, const struct assay_setting *const *tables,
                                size_t ntables)
{
	/* the prose after the tables, one Markdown line per entry */
	static const char *const trailer[] = {
	        "## Configuration file",
	        "",
	        "Plain text, one `key = value` per line, keys as in the *Name* column. Blank lines "
	        "and",
	        "lines whose first non-blank character is `#` are ignored; whitespace around key "
	        "and value",
	        "is trimmed; there is no quoting, so a value runs to the end of its line. An "
	        "unknown key is",
	        "an error reported with its line number. When a key appears twice, the last line "
	        "wins.",
	        "",
	        "```",
	        "# consumer tuning",
	        "batch.max.messages = 500",
	        "kafka.linger.ms = 5",
	        "```",
	        "",
	        "Integers are decimal (`-`/`+` sign allowed, nothing else); booleans are `true`, "
	        "`false`,",
	        "`yes`, `no`, `on`, `off`, `1` or `0`. Environment variables whose names start "
	        "with",
	        "`ASSAY_` but are not listed above are ignored.",
	        "",
	        "## librdkafka properties (`kafka.` passthrough)",
	        "",
	        "Any librdkafka property can be set without a table entry: in the file as",
	        "`kafka.<property> = <value>` (for example `kafka.compression.type = lz4`), and in "
	        "the",
	        "environment as a comma-separated list in `ASSAY_KAFKA_PROPERTIES` (for example",
	        "`ASSAY_KAFKA_PROPERTIES=linger.ms=5,compression.type=lz4`), which overrides the "
	        "file",
	        "property by property. Values cannot contain commas in the environment form. The",
	        "properties reach `rd_kafka_conf_set` unchanged, so librdkafka itself rejects an "
	        "unknown",
	        "property or a bad value at start-up. Properties the runtime depends on for "
	        "exactly-once",
	        "delivery (`enable.auto.commit`, `isolation.level`, `transactional.id`, ...) are "
	        "set by",
	        "the runtime and should not be overridden.",
	        "",
	        "Each service has a consumer and a transactional producer. A property prefixed",
	        "`consumer.` or `producer.` (`kafka.consumer.session.timeout.ms = 6000`) goes to "
	        "that",
	        "client only, without the prefix; any other property goes to both.",
	};
	size_t i;

	if (out == NULL || (tables == NULL && ntables > 0))
		return ASSAY_ERR_FATAL;
	fputs("# Configuration\n"
	      "\n"
	      "<!-- Generated from the settings tables by assay_config_write_markdown(). Do not "
	      "edit:\n"
	      "     change the table, then run tests/unit/test_config_doc with ASSAY_WRITE_DOCS=1. "
	      "-->\n"
	      "\n"
	      "Every assay service reads its settings once at start-up and refuses to start, "
	      "listing\n"
	      "every problem at once, when one is unknown, malformed or out of range. Each "
	      "setting comes\n"
	      "from, later sources winning:\n"
	      "\n"
	      "1. its default below (a service may replace a core default, e.g. its own "
	      "`metrics.port`);\n"
	      "2. the configuration file, when the service is given one;\n"
	      "3. its environment variable, when set (even to an empty value).\n"
	      "\n",
	      out);
	for (i = 0; i < ntables; i++) {
		if (tables[i] != NULL)
			md_table(out, tables[i], i);
	}
	for (i = 0; i < sizeof(trailer) / sizeof(trailer[0]); i++)
		fprintf(out, "%s\n", trailer[i]);
	if (fflush(out) != 0 || ferror(out))
		return ASSAY_ERR_FATAL;
	return 0;
}
