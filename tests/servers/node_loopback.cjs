// Preloaded with `node --require` for servers that listen on every interface when given only a
// port (server-everything's HTTP transports): a port-only listen() binds 127.0.0.1 instead.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    return callback ? listen.call(this, Number(args[0]), "127.0.0.1", callback) : listen.call(this, Number(args[0]), "127.0.0.1");
  }
  return listen.apply(this, args);
};
