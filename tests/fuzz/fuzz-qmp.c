/* tests/fuzz/fuzz-qmp.c: libFuzzer target for everything the agent parses
 * from QEMU's monitor: the QMP framing (ms-qmp-stream: split, joined,
 * oversized and malformed messages), then the replies the agent interprets
 * (query-memdev -> guest RAM layout, query-pci -> hotplug buses). QEMU is
 * untrusted from the agent's point of view: a compromised guest may control
 * it. Any crash, leak or UB here is a bug. */
#include "ms-guestmem.h"
#include "ms-images.h"
#include "ms-qmp-stream.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
interpret(JsonObject *msg)
{
    if (!json_object_has_member(msg, "return"))
        return;
    JsonNode *ret = json_object_get_member(msg, "return");
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) memdevs = ms_guestmem_memdevs_from_json(ret, &error);
    g_clear_error(&error);
    if (memdevs)
        (void)ms_guestmem_memdevs_drop_device_backed(memdevs, ret, &error);
    g_clear_error(&error);
    g_autoptr(GPtrArray) buses = ms_images_hotplug_buses(ret, &error);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Feed in two pieces, split where the first byte says: replies arrive
     * in arbitrary read(2) chunks. */
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(64 * 1024);
    size_t cut = size ? data[0] % (size + 1) : 0;
    ms_qmp_stream_feed(stream, data, cut);
    ms_qmp_stream_feed(stream, data + cut, size - cut);
    for (int i = 0; i < 64; i++) {
        g_autoptr(GError) error = NULL;
        JsonObject *msg = ms_qmp_stream_pop(stream, &error);
        if (msg == NULL)
            break;
        interpret(msg);
        json_object_unref(msg);
    }
    return 0;
}
