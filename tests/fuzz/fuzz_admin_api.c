/*
 * fuzz_admin_api.c - libFuzzer target for formats/admin_api's parser: the
 * first input byte picks the body kind and whether it is read as a list, the
 * rest is the body. Whatever the parser accepts, the encoder must accept
 * too, and its text must parse again to a body that encodes to the same
 * text (encode -> parse -> encode is stable). Seeds: one body of each kind
 * (tests/fuzz/corpus/fuzz_admin_api/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/admin_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Rows of l as a list answer's text (NULL: the encoder refused). */
static char *encode_list(const struct fmt_admin_list *l)
{
	cJSON *top = NULL, *rows = NULL;
	if (fmt_admin_list_new(l->kind, &top, &rows, NULL) != IDP_OK)
		abort();
	size_t size = fmt_admin_size(l->kind);
	for (size_t i = 0; i < l->n; i++)
		if (fmt_admin_list_add(rows, l->kind, (const char *)l->rows + i * size, NULL) !=
		    IDP_OK)
			abort(); /* the encoder refused a row the parser took */
	if (fmt_admin_list_end(top, l->next, l->now, NULL) != IDP_OK)
		abort();
	char *s = cJSON_PrintUnformatted(top);
	cJSON_Delete(top);
	return s;
}

static void list_case(enum fmt_admin_kind kind, const uint8_t *buf, size_t len)
{
	struct fmt_admin_list l, again;
	if (fmt_admin_list_parse(kind, buf, len, &l, NULL) != IDP_OK) {
		if (l.doc.json != NULL || l.rows != NULL)
			abort(); /* a refusal left something behind */
		return;
	}
	char *first = encode_list(&l);
	if (first == NULL)
		abort();
	if (fmt_admin_list_parse(kind, (const uint8_t *)first, strlen(first), &again, NULL) !=
	    IDP_OK)
		abort(); /* the encoder wrote what the parser refuses */
	char *second = encode_list(&again);
	if (second == NULL || strcmp(first, second) != 0)
		abort(); /* not stable */
	cJSON_free(first);
	cJSON_free(second);
	fmt_admin_list_free(&l);
	fmt_admin_list_free(&again);
}

static void object_case(enum fmt_admin_kind kind, const uint8_t *buf, size_t len)
{
	static union {
		struct fmt_admin_device d;
		struct fmt_admin_done done;
		struct fmt_admin_audit_check c;
		char any[512];
	} out, again;
	struct fmt_admin_doc doc, doc2;
	if (fmt_admin_parse(kind, buf, len, &out, &doc, NULL) != IDP_OK)
		return;
	char *first = NULL, *second = NULL;
	size_t n1 = 0, n2 = 0;
	if (fmt_admin_encode_text(kind, &out, &first, &n1, NULL) != IDP_OK)
		abort(); /* the encoder refused what the parser took */
	if (fmt_admin_parse(kind, (const uint8_t *)first, n1, &again, &doc2, NULL) != IDP_OK)
		abort();
	if (fmt_admin_encode_text(kind, &again, &second, &n2, NULL) != IDP_OK || n1 != n2 ||
	    memcmp(first, second, n1) != 0)
		abort(); /* not stable */
	cJSON_free(first);
	cJSON_free(second);
	fmt_admin_doc_free(&doc);
	fmt_admin_doc_free(&doc2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	enum fmt_admin_kind kind = (enum fmt_admin_kind)((data[0] & 0x7f) % FMT_ADMIN_KIND_COUNT);
	if ((data[0] & 0x80) && fmt_admin_list_name(kind) != NULL)
		list_case(kind, data + 1, size - 1);
	else
		object_case(kind, data + 1, size - 1);
	return 0;
}
