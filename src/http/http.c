/* http — see http.h. */
#include "http/http.h"

int http_field_find(const struct http_field *f, size_t n, enum http_field_id id)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].id == id)
            return (int)i;
    return -1;
}
