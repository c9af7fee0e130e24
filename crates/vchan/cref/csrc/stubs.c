/*
 * What libxenvchan's io.o needs besides the shared memory: event-channel
 * notifications (counted here instead of sent), and calls it only makes on
 * close or wait (refused). Plus a constructor for `struct libxenvchan` over
 * memory the test owns, set up as libxenvchan's init code leaves it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <libxenvchan.h>

static unsigned long notifies;

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    (void)port;
    notifies++;
    return 0;
}

unsigned long cref_vchan_notifies(void)
{
    return notifies;
}

int xenevtchn_fd(xenevtchn_handle *xce) { (void)xce; return -1; }
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce) { (void)xce; return -1; }
int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return -1; }
int xenevtchn_close(xenevtchn_handle *xce) { (void)xce; return 0; }
int xengntshr_close(xengntshr_handle *xgs) { (void)xgs; return 0; }
int xengntshr_unshare(xengntshr_handle *xgs, void *start, uint32_t count)
{ (void)xgs; (void)start; (void)count; return 0; }
int xengnttab_close(xengnttab_handle *xgt) { (void)xgt; return 0; }
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{ (void)xgt; (void)start_address; (void)count; return 0; }
void close_xs_srv(struct libxenvchan *ctrl) { (void)ctrl; }

static void *ring_buffer(void *page, int order, void *pages)
{
    switch (order) {
    case 10: return (char *)page + 1024;
    case 11: return (char *)page + 2048;
    default: return pages;
    }
}

/*
 * A non-blocking end over `page` (orders read from it, as the client's
 * init does; the server's init wrote them), with the ring pages of orders
 * >= 12 at `left` and `right`.
 */
struct libxenvchan *cref_vchan_new(void *page, int is_server, void *left, void *right)
{
    struct vchan_interface *ring = page;
    struct libxenvchan *ctrl = calloc(1, sizeof(*ctrl));
    struct libxenvchan_ring *l, *r;

    if (!ctrl)
        return NULL;
    ctrl->ring = ring;
    ctrl->event = (xenevtchn_handle *)ctrl; /* never dereferenced by the stubs */
    ctrl->event_port = 1;
    ctrl->is_server = is_server ? -1 : 0; /* a 1-bit signed field */
    ctrl->blocking = 0;
    l = is_server ? &ctrl->read : &ctrl->write;
    r = is_server ? &ctrl->write : &ctrl->read;
    l->shr = &ring->left;
    l->order = ring->left_order;
    l->buffer = ring_buffer(page, l->order, left);
    r->shr = &ring->right;
    r->order = ring->right_order;
    r->buffer = ring_buffer(page, r->order, right);
    return ctrl;
}

void cref_vchan_free(struct libxenvchan *ctrl)
{
    free(ctrl);
}
