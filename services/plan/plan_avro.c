/*
 * Avro in and out for assay-plan (plan_avro.h). Decoding reads fields by name through the
 * codec's getters, so a command written with an older or newer schema still decodes; a field
 * that is missing or has the wrong type makes the command undecodable (dead-lettered by the
 * caller). Encoding fills every field of the event schemas, unions included.
 */
#include "plan_avro.h"
#include "assay_err.h"

#include <stdio.h>
#include <string.h>

int plan_cmd_kind(const char *full_name)
{
	return plan_enum_parse(plan_cmd_names, PLAN_NCMD_KINDS, full_name);
}

/* ---- decoding ---- */

struct dec {
	struct plan_arena *a;
	char *errstr;
	size_t errstr_size;
};

static int bad(struct dec *d, const char *field)
{
	return assay_errf(ASSAY_ERR_REJECT, d->errstr, d->errstr_size,
	                  "malformed command: field %s is missing or has the wrong type", field);
}

static int get_str(struct dec *d, avro_value_t *rec, const char *field, const char **out)
{
	size_t len;

	if (assay_value_string(rec, field, out, &len) != 0)
		return bad(d, field);
	if (strlen(*out) != len)
		return assay_errf(ASSAY_ERR_REJECT, d->errstr, d->errstr_size,
		                  "malformed command: field %s holds a NUL byte", field);
	return 0;
}

static int get_opt_str(struct dec *d, avro_value_t *rec, const char *field, const char **out)
{
	size_t len;

	if (assay_value_opt_string(rec, field, out, &len) != 0)
		return bad(d, field);
	if (*out && strlen(*out) != len)
		return assay_errf(ASSAY_ERR_REJECT, d->errstr, d->errstr_size,
		                  "malformed command: field %s holds a NUL byte", field);
	return 0;
}

static int get_int(struct dec *d, avro_value_t *rec, const char *field, int32_t *out)
{
	return assay_value_int(rec, field, out) == 0 ? 0 : bad(d, field);
}

static int get_opt_date(struct dec *d, avro_value_t *rec, const char *field, int32_t *out)
{
	return assay_value_int_or(rec, field, PLAN_NO_DATE, out) == 0 ? 0 : bad(d, field);
}

static int get_bool(struct dec *d, avro_value_t *rec, const char *field, bool *out)
{
	return assay_value_bool(rec, field, out) == 0 ? 0 : bad(d, field);
}

/* An enum field as an index into names (-1 for a symbol this build does not know). */
static int get_enum(struct dec *d, avro_value_t *rec, const char *field, const char *const *names,
                    int n, int *out)
{
	const char *sym;

	if (assay_value_enum(rec, field, &sym) != 0)
		return bad(d, field);
	*out = plan_enum_parse(names, n, sym);
	return 0;
}

static avro_schema_t resolve(avro_schema_t s)
{
	while (s && is_avro_link(s))
		s = avro_schema_link_target(s);
	return s;
}

/* An enum value (an array element) as an index into names. */
static int elem_enum(struct dec *d, avro_value_t *elem, const char *field, const char *const *names,
                     int n, int *out)
{
	int idx;
	const char *sym;

	if (avro_value_get_type(elem) != AVRO_ENUM || avro_value_get_enum(elem, &idx) != 0)
		return bad(d, field);
	sym = avro_schema_enum_get(resolve(avro_value_get_schema(elem)), idx);
	*out = plan_enum_parse(names, n, sym);
	return 0;
}

/* An array field: its view and count, and room for count items of size bytes. */
static int get_array(struct dec *d, avro_value_t *rec, const char *field, avro_value_t *arr,
                     size_t *n, size_t size, void **items)
{
	if (assay_value_array(rec, field, arr, n) != 0)
		return bad(d, field);
	*items = NULL;
	if (*n == 0)
		return 0;
	*items = plan_arena_alloc(d->a, *n * size);
	return *items ? 0 : ASSAY_ERR_FATAL;
}

static int get_elem(struct dec *d, avro_value_t *arr, size_t i, const char *field,
                    avro_value_t *elem)
{
	return assay_value_array_get(arr, i, elem) == 0 ? 0 : bad(d, field);
}

/* An array of Standard symbols. */
static int get_standards(struct dec *d, avro_value_t *rec, const char *field, const int **out,
                         size_t *n)
{
	avro_value_t arr, elem;
	int *v;
	int err = get_array(d, rec, field, &arr, n, sizeof(int), (void **)&v);

	for (size_t i = 0; !err && i < *n; i++) {
		err = get_elem(d, &arr, i, field, &elem);
		if (!err)
			err = elem_enum(d, &elem, field, plan_standard_names, PLAN_NSTANDARDS,
			                &v[i]);
	}
	*out = v;
	return err;
}

static int decode_head(struct dec *d, avro_value_t *v, struct plan_head *h)
{
	int err = get_str(d, v, "command_id", &h->command_id);

	if (!err)
		err = get_str(d, v, "tenant_id", &h->tenant_id);
	if (!err)
		err = assay_value_long(v, "issued_at", &h->issued_at) == 0 ? 0
		                                                           : bad(d, "issued_at");
	if (!err)
		err = get_str(d, v, "issued_by", &h->issued_by);
	return err;
}

static int decode_client(struct dec *d, avro_value_t *v, struct plan_client *c)
{
	avro_value_t arr, e;
	int err = get_str(d, v, "client_id", &c->client_id);

	if (!err)
		err = get_str(d, v, "legal_name", &c->legal_name);
	if (!err)
		err = get_int(d, v, "persons", &c->persons);
	if (!err)
		err = get_array(d, v, "sites", &arr, &c->nsites, sizeof(*c->sites),
		                (void **)&c->sites);
	for (size_t i = 0; !err && i < c->nsites; i++) {
		struct plan_site *s = &c->sites[i];

		err = get_elem(d, &arr, i, "sites", &e);
		if (!err)
			err = get_str(d, &e, "site_id", &s->site_id);
		if (!err)
			err = get_str(d, &e, "name", &s->name);
		if (!err)
			err = get_opt_str(d, &e, "country", &s->country);
		if (!err)
			err = get_int(d, &e, "persons", &s->persons);
		if (!err)
			err = get_bool(d, &e, "central_function", &s->central_function);
	}
	if (!err)
		err = get_array(d, v, "identical_work_groups", &arr, &c->ngroups,
		                sizeof(*c->groups), (void **)&c->groups);
	for (size_t i = 0; !err && i < c->ngroups; i++) {
		struct plan_group *g = &c->groups[i];

		err = get_elem(d, &arr, i, "identical_work_groups", &e);
		if (!err)
			err = get_str(d, &e, "group_id", &g->group_id);
		if (!err)
			err = get_str(d, &e, "description", &g->description);
		if (!err)
			err = get_int(d, &e, "persons", &g->persons);
		if (!err)
			err = get_str(d, &e, "justification", &g->justification);
	}
	if (!err)
		err = get_array(d, v, "ai_systems", &arr, &c->nai_systems, sizeof(*c->ai_systems),
		                (void **)&c->ai_systems);
	for (size_t i = 0; !err && i < c->nai_systems; i++) {
		struct plan_ai_system *s = &c->ai_systems[i];
		avro_value_t roles, r;
		size_t nroles;

		err = get_elem(d, &arr, i, "ai_systems", &e);
		if (!err)
			err = get_str(d, &e, "ai_system_id", &s->ai_system_id);
		if (!err)
			err = get_str(d, &e, "name", &s->name);
		if (!err)
			err = assay_value_array(&e, "roles", &roles, &nroles) == 0
			              ? 0
			              : bad(d, "roles");
		for (size_t k = 0; !err && k < nroles; k++) {
			int role;

			err = get_elem(d, &roles, k, "roles", &r);
			if (!err)
				err = elem_enum(d, &r, "roles", plan_ai_role_names, PLAN_NAI_ROLES,
				                &role);
			if (!err && role >= 0)
				s->roles |= 1u << role;
		}
		if (!err)
			err = get_enum(d, &e, "eu_ai_act_tier", plan_ai_tier_names, PLAN_NAI_TIERS,
			               &s->tier);
		if (!err)
			err = get_opt_str(d, &e, "intended_purpose", &s->intended_purpose);
	}
	return err;
}

static int decode_person(struct dec *d, avro_value_t *v, struct plan_person *p)
{
	avro_value_t arr, e;
	int err = get_str(d, v, "person_id", &p->person_id);

	if (!err)
		err = get_str(d, v, "name", &p->name);
	if (!err)
		err = get_array(d, v, "competences", &arr, &p->ncompetences,
		                sizeof(*p->competences), (void **)&p->competences);
	for (size_t i = 0; !err && i < p->ncompetences; i++) {
		struct plan_competence *c = &p->competences[i];

		err = get_elem(d, &arr, i, "competences", &e);
		if (!err)
			err = get_enum(d, &e, "standard", plan_standard_names, PLAN_NSTANDARDS,
			               &c->standard);
		if (!err)
			err = get_enum(d, &e, "role", plan_role_names, PLAN_NROLES, &c->role);
		if (!err)
			err = get_opt_str(d, &e, "technical_area", &c->technical_area);
		if (!err)
			err = get_opt_date(d, &e, "valid_from", &c->valid_from);
		if (!err)
			err = get_opt_date(d, &e, "valid_until", &c->valid_until);
	}
	if (!err)
		err = get_array(d, v, "client_relations", &arr, &p->nrelations,
		                sizeof(*p->relations), (void **)&p->relations);
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		struct plan_relation *r = &p->relations[i];

		err = get_elem(d, &arr, i, "client_relations", &e);
		if (!err)
			err = get_str(d, &e, "client_id", &r->client_id);
		if (!err)
			err = get_enum(d, &e, "kind", plan_relation_kind_names,
			               PLAN_NRELATION_KINDS, &r->kind);
		if (!err)
			err = get_int(d, &e, "started_on", &r->started_on);
		if (!err)
			err = get_opt_date(d, &e, "ended_on", &r->ended_on);
	}
	return err;
}

static int decode_audit(struct dec *d, avro_value_t *v, struct plan_audit *a)
{
	avro_value_t arr, e, integ;
	int err = get_str(d, v, "audit_id", &a->audit_id);

	if (!err)
		err = get_str(d, v, "client_id", &a->client_id);
	if (!err)
		err = get_enum(d, v, "audit_type", plan_audit_type_names, PLAN_NAUDIT_TYPES,
		               &a->audit_type);
	if (!err)
		err = get_array(d, v, "standards", &arr, &a->nscopes, sizeof(*a->scopes),
		                (void **)&a->scopes);
	for (size_t i = 0; !err && i < a->nscopes; i++) {
		struct plan_scope *s = &a->scopes[i];

		err = get_elem(d, &arr, i, "standards", &e);
		if (!err)
			err = get_enum(d, &e, "standard", plan_standard_names, PLAN_NSTANDARDS,
			               &s->standard);
		if (!err)
			err = get_opt_str(d, &e, "cycle_id", &s->cycle_id);
		if (!err)
			err = get_str(d, &e, "scope_statement", &s->scope_statement);
	}
	if (!err)
		err = get_int(d, v, "planned_start", &a->planned_start);
	if (!err)
		err = get_int(d, v, "planned_end", &a->planned_end);
	if (!err)
		err = get_array(d, v, "site_ids", &arr, &a->nsite_ids, sizeof(*a->site_ids),
		                (void **)&a->site_ids);
	for (size_t i = 0; !err && i < a->nsite_ids; i++) {
		size_t len;

		err = get_elem(d, &arr, i, "site_ids", &e);
		if (!err && assay_value_as_string(&e, &a->site_ids[i], &len) != 0)
			err = bad(d, "site_ids");
	}
	if (!err)
		err = assay_value_record(v, "integration", &integ) == 0 ? 0 : bad(d, "integration");
	for (int k = 0; !err && k < PLAN_INTEGRATION_ELEMENTS; k++)
		err = get_bool(d, &integ, plan_integration_names[k], &a->integration[k]);
	if (!err)
		err = get_array(d, v, "adjustments", &arr, &a->nadjustments,
		                sizeof(*a->adjustments), (void **)&a->adjustments);
	for (size_t i = 0; !err && i < a->nadjustments; i++) {
		struct plan_adjustment *adj = &a->adjustments[i];

		err = get_elem(d, &arr, i, "adjustments", &e);
		if (!err)
			err = get_enum(d, &e, "standard", plan_standard_names, PLAN_NSTANDARDS,
			               &adj->standard);
		if (!err)
			err = get_str(d, &e, "factor", &adj->factor);
		if (!err)
			err = assay_value_double(&e, "percent", &adj->percent) == 0
			              ? 0
			              : bad(d, "percent");
		if (!err)
			err = get_str(d, &e, "justification", &adj->justification);
	}
	return err;
}

int plan_decode(avro_value_t *value, const char *full_name, struct plan_arena *a,
                struct plan_cmd *cmd, char *errstr, size_t errstr_size)
{
	struct dec d = {a, errstr, errstr_size};
	int err;

	memset(cmd, 0, sizeof(*cmd));
	cmd->kind = plan_cmd_kind(full_name);
	if (cmd->kind < 0)
		return assay_errf(ASSAY_ERR_REJECT, errstr, errstr_size,
		                  "unexpected record: %s is not an audit command",
		                  full_name ? full_name : "(none)");
	err = decode_head(&d, value, &cmd->head);
	if (err)
		return err;
	switch (cmd->kind) {
	case PLAN_REGISTER_CLIENT:
		return decode_client(&d, value, &cmd->u.client);
	case PLAN_RECORD_AUDITOR:
		return decode_person(&d, value, &cmd->u.person);
	case PLAN_OPEN_AUDIT:
		return decode_audit(&d, value, &cmd->u.audit);
	case PLAN_ASSIGN_TEAM_MEMBER: {
		struct plan_assign *as = &cmd->u.assign;

		err = get_str(&d, value, "audit_id", &as->audit_id);
		if (!err)
			err = get_str(&d, value, "person_id", &as->person_id);
		if (!err)
			err = get_enum(&d, value, "role", plan_role_names, PLAN_NROLES, &as->role);
		if (!err)
			err = get_standards(&d, value, "standards", &as->standards,
			                    &as->nstandards);
		return err;
	}
	case PLAN_SUBMIT_SOA: {
		struct plan_submit_soa *so = &cmd->u.soa;
		struct plan_soa_row *rows = NULL;
		avro_value_t arr, e;

		err = get_str(&d, value, "audit_id", &so->audit_id);
		if (!err)
			err = get_enum(&d, value, "standard", plan_standard_names, PLAN_NSTANDARDS,
			               &so->standard);
		if (!err)
			err = get_str(&d, value, "soa_version", &so->soa_version);
		if (!err)
			err = get_array(&d, value, "rows", &arr, &so->nrows, sizeof(*rows),
			                (void **)&rows);
		for (size_t i = 0; !err && i < so->nrows; i++) {
			err = get_elem(&d, &arr, i, "rows", &e);
			if (!err)
				err = get_str(&d, &e, "control_id", &rows[i].control_id);
			if (!err)
				err = get_bool(&d, &e, "applicable", &rows[i].applicable);
			if (!err)
				err = get_str(&d, &e, "justification", &rows[i].justification);
		}
		so->rows = rows;
		return err;
	}
	case PLAN_COMPLETE_STAGE: {
		struct plan_complete *co = &cmd->u.complete;

		err = get_str(&d, value, "audit_id", &co->audit_id);
		if (!err)
			err = get_enum(&d, value, "stage", plan_audit_type_names, PLAN_NAUDIT_TYPES,
			               &co->stage);
		if (!err)
			err = get_int(&d, value, "last_day", &co->last_day);
		if (!err)
			err = get_standards(&d, value, "standards", &co->standards,
			                    &co->nstandards);
		return err;
	}
	case PLAN_RECORD_DECISION_MAKER: {
		struct plan_record_dm *dm = &cmd->u.dm;

		err = get_str(&d, value, "audit_id", &dm->audit_id);
		if (!err)
			err = get_enum(&d, value, "standard", plan_standard_names, PLAN_NSTANDARDS,
			               &dm->standard);
		if (!err)
			err = get_str(&d, value, "person_id", &dm->person_id);
		return err;
	}
	}
	return ASSAY_ERR_FATAL;
}

/* ---- encoding ---- */

/* Every setter returns 0 or a failure; E() keeps the first failure. */
#define E(call)                                \
	do {                                   \
		if (err == 0 && (call) != 0)   \
			err = ASSAY_ERR_FATAL; \
	} while (0)

static int set_null(avro_value_t *rec, const char *field)
{
	avro_value_t v;

	if (assay_value_field(rec, field, AVRO_NULL, &v) != 0)
		return ASSAY_ERR_FATAL;
	return avro_value_set_null(&v) == 0 ? 0 : ASSAY_ERR_FATAL;
}

static int set_opt_date(avro_value_t *rec, const char *field, int32_t day)
{
	return day == PLAN_NO_DATE ? set_null(rec, field) : assay_value_set_int(rec, field, day);
}

static int set_opt_double(avro_value_t *rec, const char *field, bool set, double x)
{
	return set ? assay_value_set_double(rec, field, x) : set_null(rec, field);
}

static int append(avro_value_t *arr, avro_value_t *elem)
{
	return avro_value_append(arr, elem, NULL) == 0 ? 0 : ASSAY_ERR_FATAL;
}

static int append_enum(avro_value_t *arr, const char *symbol)
{
	avro_value_t elem;
	int idx;

	if (append(arr, &elem) != 0)
		return ASSAY_ERR_FATAL;
	idx = avro_schema_enum_get_by_name(resolve(avro_value_get_schema(&elem)), symbol);
	if (idx < 0)
		return ASSAY_ERR_FATAL;
	return avro_value_set_enum(&elem, idx) == 0 ? 0 : ASSAY_ERR_FATAL;
}

static int append_string(avro_value_t *arr, const char *s)
{
	avro_value_t elem;

	if (append(arr, &elem) != 0)
		return ASSAY_ERR_FATAL;
	return avro_value_set_string(&elem, s) == 0 ? 0 : ASSAY_ERR_FATAL;
}

static int array_of(avro_value_t *rec, const char *field, avro_value_t *arr)
{
	return assay_value_field(rec, field, AVRO_ARRAY, arr);
}

/* Standards of a bit set (bit i = standard i), in enum order. */
static int set_standard_bits(avro_value_t *rec, const char *field, unsigned bits)
{
	avro_value_t arr;
	int err = array_of(rec, field, &arr);

	for (int s = 0; !err && s < PLAN_NSTANDARDS; s++)
		if (bits & (1u << s))
			err = append_enum(&arr, plan_standard_names[s]);
	return err;
}

static int set_head(avro_value_t *v, const struct plan_event_head *h)
{
	int err = 0;

	E(assay_value_set_string(v, "event_id", h->event_id));
	E(assay_value_set_string(v, "tenant_id", h->tenant_id));
	E(assay_value_set_long(v, "occurred_at", h->occurred_at));
	E(assay_value_set_string(v, "command_id", h->command_id));
	return err;
}

static int set_ai_systems(avro_value_t *v, const struct plan_ai_system *ai, size_t n)
{
	avro_value_t arr, e, roles;
	int err = array_of(v, "ai_systems", &arr);

	for (size_t i = 0; !err && i < n; i++) {
		E(append(&arr, &e));
		E(assay_value_set_string(&e, "ai_system_id", ai[i].ai_system_id));
		E(assay_value_set_string(&e, "name", ai[i].name));
		E(array_of(&e, "roles", &roles));
		for (int r = 0; r < PLAN_NAI_ROLES; r++)
			if (ai[i].roles & (1u << r))
				E(append_enum(&roles, plan_ai_role_names[r]));
		E(assay_value_set_enum(&e, "eu_ai_act_tier", plan_ai_tier_names[ai[i].tier]));
		E(assay_value_set_null_or_string(&e, "intended_purpose", ai[i].intended_purpose));
	}
	return err;
}

int plan_encode_client_registered(avro_value_t *v, const struct plan_event_head *h,
                                  const struct plan_client *c)
{
	avro_value_t arr, e;
	int err = set_head(v, h);

	E(assay_value_set_string(v, "client_id", c->client_id));
	E(assay_value_set_int(v, "revision", c->revision));
	E(assay_value_set_string(v, "legal_name", c->legal_name));
	E(array_of(v, "sites", &arr));
	for (size_t i = 0; !err && i < c->nsites; i++) {
		E(append(&arr, &e));
		E(assay_value_set_string(&e, "site_id", c->sites[i].site_id));
		E(assay_value_set_string(&e, "name", c->sites[i].name));
		E(assay_value_set_null_or_string(&e, "country", c->sites[i].country));
		E(assay_value_set_int(&e, "persons", c->sites[i].persons));
		E(assay_value_set_bool(&e, "central_function", c->sites[i].central_function));
	}
	E(assay_value_set_int(v, "persons", c->persons));
	E(array_of(v, "identical_work_groups", &arr));
	for (size_t i = 0; !err && i < c->ngroups; i++) {
		E(append(&arr, &e));
		E(assay_value_set_string(&e, "group_id", c->groups[i].group_id));
		E(assay_value_set_string(&e, "description", c->groups[i].description));
		E(assay_value_set_int(&e, "persons", c->groups[i].persons));
		E(assay_value_set_string(&e, "justification", c->groups[i].justification));
	}
	E(set_ai_systems(v, c->ai_systems, c->nai_systems));
	return err;
}

int plan_encode_auditor_recorded(avro_value_t *v, const struct plan_event_head *h,
                                 const struct plan_person *p)
{
	avro_value_t arr, e;
	int err = set_head(v, h);

	E(assay_value_set_string(v, "person_id", p->person_id));
	E(assay_value_set_int(v, "revision", p->revision));
	E(assay_value_set_string(v, "name", p->name));
	E(array_of(v, "competences", &arr));
	for (size_t i = 0; !err && i < p->ncompetences; i++) {
		const struct plan_competence *c = &p->competences[i];

		E(append(&arr, &e));
		E(assay_value_set_enum(&e, "standard", plan_standard_names[c->standard]));
		E(assay_value_set_enum(&e, "role", plan_role_names[c->role]));
		E(assay_value_set_null_or_string(&e, "technical_area", c->technical_area));
		E(set_opt_date(&e, "valid_from", c->valid_from));
		E(set_opt_date(&e, "valid_until", c->valid_until));
	}
	E(array_of(v, "client_relations", &arr));
	for (size_t i = 0; !err && i < p->nrelations; i++) {
		const struct plan_relation *r = &p->relations[i];

		E(append(&arr, &e));
		E(assay_value_set_string(&e, "client_id", r->client_id));
		E(assay_value_set_enum(&e, "kind", plan_relation_kind_names[r->kind]));
		E(assay_value_set_int(&e, "started_on", r->started_on));
		E(set_opt_date(&e, "ended_on", r->ended_on));
	}
	return err;
}

static int set_audit_time(avro_value_t *v, const struct plan_audit *a)
{
	const struct plan_time *t = a->time;
	avro_value_t at, arr, e, groups, g, adjs, adj, notes;
	int err = assay_value_record(v, "audit_time", &at);

	if (err || t == NULL)
		return ASSAY_ERR_FATAL;
	E(array_of(&at, "standards", &arr));
	for (size_t i = 0; !err && i < t->nstandards; i++) {
		const struct plan_standard_time *st = &t->standards[i];

		E(append(&arr, &e));
		E(assay_value_set_enum(&e, "standard", plan_standard_names[st->standard]));
		E(assay_value_set_bool(&e, "configured", st->configured));
		E(assay_value_set_int(&e, "persons", st->persons));
		E(array_of(&e, "identical_groups", &groups));
		for (size_t k = 0; !err && k < st->ngroups; k++) {
			E(append(&groups, &g));
			E(assay_value_set_string(&g, "group_id", st->groups[k].group_id));
			E(assay_value_set_int(&g, "persons", st->groups[k].persons));
			E(assay_value_set_int(&g, "counted", st->groups[k].counted));
		}
		E(assay_value_set_int(&e, "effective_persons", st->effective_persons));
		E(set_opt_double(&e, "table_days", st->configured, st->table_days));
		E(array_of(&e, "adjustments", &adjs));
		for (size_t k = 0; !err && k < a->nadjustments; k++) {
			const struct plan_adjustment *x = &a->adjustments[k];

			if (x->standard != st->standard)
				continue;
			E(append(&adjs, &adj));
			E(assay_value_set_enum(&adj, "standard", plan_standard_names[x->standard]));
			E(assay_value_set_string(&adj, "factor", x->factor));
			E(assay_value_set_double(&adj, "percent", x->percent));
			E(assay_value_set_string(&adj, "justification", x->justification));
		}
		E(assay_value_set_double(&e, "adjustment_sum_percent", st->adjustment_sum_percent));
		E(assay_value_set_double(&e, "adjustment_cap_percent", st->adjustment_cap_percent));
		E(assay_value_set_double(&e, "adjustment_applied_percent",
		                         st->adjustment_applied_percent));
		E(set_opt_double(&e, "days", st->configured, st->days));
	}
	E(assay_value_set_int(&at, "sites_total", t->sites_total));
	E(assay_value_set_int(&at, "sites_sampled", t->sites_sampled));
	E(assay_value_set_double(&at, "sampling_factor", t->sampling_factor));
	E(set_opt_double(&at, "sum_days", t->configured, t->sum_days));
	E(assay_value_set_int(&at, "integration_elements", t->integration_elements));
	E(assay_value_set_double(&at, "integration_reduction_percent",
	                         t->integration_reduction_percent));
	E(set_opt_double(&at, "total_reduction_percent", t->configured,
	                 t->total_reduction_percent));
	E(assay_value_set_double(&at, "total_reduction_cap_percent",
	                         t->total_reduction_cap_percent));
	E(set_opt_double(&at, "total_days", t->configured, t->total_days));
	E(set_opt_double(&at, "onsite_days", t->configured, t->onsite_days));
	E(set_opt_double(&at, "offsite_days", t->configured, t->offsite_days));
	E(assay_value_set_double(&at, "onsite_min_percent", t->onsite_min_percent));
	E(array_of(&at, "notes", &notes));
	for (size_t k = 0; !err && k < t->nnotes; k++)
		E(append_string(&notes, t->notes[k]));
	E(set_opt_double(&at, "initial_days", t->configured, t->initial_days));
	E(assay_value_set_double(&at, "audit_share_percent", t->audit_share_percent));
	return err;
}

int plan_encode_audit_opened(avro_value_t *v, const struct plan_event_head *h,
                             const struct plan_audit *a)
{
	avro_value_t arr, e, integ;
	int err = set_head(v, h);

	E(assay_value_set_string(v, "audit_id", a->audit_id));
	E(assay_value_set_string(v, "client_id", a->client_id));
	E(assay_value_set_enum(v, "audit_type", plan_audit_type_names[a->audit_type]));
	E(array_of(v, "standards", &arr));
	for (size_t i = 0; !err && i < a->nscopes; i++) {
		E(append(&arr, &e));
		E(assay_value_set_enum(&e, "standard", plan_standard_names[a->scopes[i].standard]));
		E(assay_value_set_null_or_string(&e, "cycle_id", a->scopes[i].cycle_id));
		E(assay_value_set_string(&e, "scope_statement", a->scopes[i].scope_statement));
	}
	E(assay_value_set_int(v, "planned_start", a->planned_start));
	E(assay_value_set_int(v, "planned_end", a->planned_end));
	E(array_of(v, "site_ids", &arr));
	for (size_t i = 0; !err && i < a->nsite_ids; i++)
		E(append_string(&arr, a->site_ids[i]));
	E(assay_value_record(v, "integration", &integ));
	for (int k = 0; !err && k < PLAN_INTEGRATION_ELEMENTS; k++)
		E(assay_value_set_bool(&integ, plan_integration_names[k], a->integration[k]));
	E(set_ai_systems(v, a->ai_systems, a->nai_systems));
	E(set_audit_time(v, a));
	return err;
}

int plan_encode_team_member_assigned(avro_value_t *v, const struct plan_event_head *h,
                                     const struct plan_audit *a, const struct plan_member *m)
{
	int err = set_head(v, h);

	E(assay_value_set_string(v, "audit_id", a->audit_id));
	E(assay_value_set_string(v, "client_id", a->client_id));
	E(assay_value_set_string(v, "person_id", m->person_id));
	E(assay_value_set_enum(v, "role", plan_role_names[m->role]));
	E(set_standard_bits(v, "standards", m->standards));
	return err;
}

int plan_encode_soa_submitted(avro_value_t *v, const struct plan_event_head *h,
                              const struct plan_audit *a, const struct plan_soa *s)
{
	avro_value_t arr, e;
	int err = set_head(v, h);

	E(assay_value_set_string(v, "audit_id", a->audit_id));
	E(assay_value_set_string(v, "client_id", a->client_id));
	E(assay_value_set_enum(v, "standard", plan_standard_names[s->standard]));
	E(assay_value_set_string(v, "soa_version", s->soa_version));
	E(assay_value_set_int(v, "revision", s->revision));
	E(array_of(v, "rows", &arr));
	for (size_t i = 0; !err && i < s->nrows; i++) {
		E(append(&arr, &e));
		E(assay_value_set_string(&e, "control_id", s->rows[i].control_id));
		E(assay_value_set_bool(&e, "applicable", s->rows[i].applicable));
		E(assay_value_set_string(&e, "justification", s->rows[i].justification));
	}
	E(assay_value_set_int(v, "applicable_count", s->applicable_count));
	E(assay_value_set_int(v, "excluded_count", s->excluded_count));
	return err;
}

int plan_encode_stage_completed(avro_value_t *v, const struct plan_event_head *h,
                                const struct plan_audit *a, const struct plan_complete *c)
{
	unsigned bits = 0;
	int err = set_head(v, h);

	for (size_t i = 0; i < c->nstandards; i++)
		bits |= 1u << c->standards[i];
	E(assay_value_set_string(v, "audit_id", a->audit_id));
	E(assay_value_set_string(v, "client_id", a->client_id));
	E(assay_value_set_enum(v, "stage", plan_audit_type_names[c->stage]));
	E(assay_value_set_int(v, "last_day", c->last_day));
	E(set_standard_bits(v, "standards", bits));
	return err;
}

int plan_encode_decision_maker_recorded(avro_value_t *v, const struct plan_event_head *h,
                                        const struct plan_audit *a, int standard,
                                        const char *cycle_id, const char *person_id)
{
	int err = set_head(v, h);

	E(assay_value_set_string(v, "audit_id", a->audit_id));
	E(assay_value_set_string(v, "client_id", a->client_id));
	E(assay_value_set_enum(v, "standard", plan_standard_names[standard]));
	E(assay_value_set_string(v, "cycle_id", cycle_id));
	E(assay_value_set_string(v, "person_id", person_id));
	return err;
}

int plan_encode_refused(avro_value_t *v, const struct plan_event_head *h, const char *command_type,
                        const char *client_id, const char *audit_id, const char *person_id,
                        const struct plan_reason *reasons, size_t nreasons)
{
	avro_value_t arr, e;
	int err = set_head(v, h);

	E(assay_value_set_string(v, "command_type", command_type));
	E(assay_value_set_null_or_string(v, "client_id", client_id));
	E(assay_value_set_null_or_string(v, "audit_id", audit_id));
	E(assay_value_set_null_or_string(v, "person_id", person_id));
	E(array_of(v, "reasons", &arr));
	for (size_t i = 0; !err && i < nreasons; i++) {
		E(append(&arr, &e));
		E(assay_value_set_enum(&e, "code", plan_refusal_names[reasons[i].code]));
		E(assay_value_set_null_or_string(
		        &e, "subject", reasons[i].subject[0] ? reasons[i].subject : NULL));
		E(assay_value_set_string(&e, "message", reasons[i].message));
	}
	return err;
}
