/*
 * badsize - the right ABI version, but a descriptor that claims to be smaller than the
 * first ABI's sq_plugin: the host must refuse it ("ABI mismatch: descriptor size 8") before
 * reading any field past the two it was promised.
 */
#include <squall.h>

/* Only the two fields every ABI shares; nothing after them exists in this object. */
struct tiny_plugin {
    uint32_t abi_version;
    uint32_t size;
};

extern const struct tiny_plugin sq_plugin_descriptor;
__attribute__((visibility("default"))) const struct tiny_plugin sq_plugin_descriptor = {
    .abi_version = SQ_ABI_VERSION,
    .size = sizeof(struct tiny_plugin),
};
