// Shared base of the backends that compute in host memory: allocation, copies and the memcpy
// bandwidth ceiling.
#pragma once

#include "ssmkit/backend.h"

namespace ssmkit {

class host_backend : public backend {
public:
    device_kind device() const override { return device_kind::host; }
    void* alloc(size_t bytes) override;
    void free(void* p) override;
    void upload(void* dst, const void* src, size_t bytes) override;
    void download(void* dst, const void* src, size_t bytes) override;
    // memcpy of a buffer far larger than the caches, split over threads() threads.
    double measure_copy_bandwidth() override;

protected:
    virtual int threads() const { return 1; }
};

}  // namespace ssmkit
