// Errors raised by ssmkit. Every op validates its arguments before touching memory, so when one of
// these is thrown no output has been written.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace ssmkit {

class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An argument broke a shape, type, stride or value rule of the op. The fields let callers and
// tests tell exactly which rule failed; what() holds the same facts as a sentence, e.g.
// "ssm_scan: tensor 'x' ne[1]: expected 48, got 47".
class shape_error : public error {
public:
    shape_error(std::string op, std::string tensor, std::string what, std::string expected,
                std::string actual);

    const std::string& op() const { return op_; }
    const std::string& tensor() const { return tensor_; }
    const std::string& field() const { return field_; }  // "ne[1]", "type", "nb[0]", "value", ...
    const std::string& expected() const { return expected_; }
    const std::string& actual() const { return actual_; }

private:
    std::string op_, tensor_, field_, expected_, actual_;
};

// A backend was asked for something it cannot do (unknown name, device memory on the wrong side,
// a CUDA call that failed).
class backend_error : public error {
public:
    using error::error;
};

// A malformed or unreadable GGUF file.
class gguf_error : public error {
public:
    using error::error;
};

}  // namespace ssmkit
