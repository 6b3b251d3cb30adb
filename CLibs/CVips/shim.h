#include <vips/vips.h>

// vips' constructors and savers are variadic (NULL-terminated option lists), which Swift cannot call;
// each wrapper fixes the options it needs.
static inline VipsImage *atl_vips_image_from_buffer(const void *buf, size_t len) {
    return vips_image_new_from_buffer(buf, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
}
