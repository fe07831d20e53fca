#include "ssmkit/error.h"

namespace ssmkit {

shape_error::shape_error(std::string op, std::string tensor, std::string field, std::string expected,
                         std::string actual)
    : error(op + ": tensor '" + tensor + "' " + field + ": expected " + expected + ", got " + actual),
      op_(std::move(op)),
      tensor_(std::move(tensor)),
      field_(std::move(field)),
      expected_(std::move(expected)),
      actual_(std::move(actual)) {}

}  // namespace ssmkit
