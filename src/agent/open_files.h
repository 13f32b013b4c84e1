// The open-file limit of processes that hold a descriptor per connection: the server's front end
// (an agent's long poll holds one) and `allot nodesim` (one per hollow node).
//
//   RaiseOpenFileLimit();  // at start, before accepting or opening connections
#pragma once

namespace allot {

// Takes as many descriptors as the system allows this process: root may raise the hard limit
// too (up to fs.nr_open); others get their hard limit. Failures leave the limit as it was.
void RaiseOpenFileLimit();

}  // namespace allot
