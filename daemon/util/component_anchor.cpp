// Every engine component library includes this file, so a component whose folder is
// still being written links as an empty library instead of breaking the configure step.
namespace omni::detail {
extern const int component_anchor;
}
