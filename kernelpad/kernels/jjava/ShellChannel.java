/*
 * JJava's ShellChannel (org.dflib.jjava.jupyter.channels, JJava 1.0-a8), changed by kernelpad:
 * the channel's thread waits in its poll for the next request instead of polling without
 * waiting and then sleeping 50 ms, and close() lets that thread leave its poll before the
 * socket closes. Everything else is JJava's. JJava is licensed under the Apache License 2.0
 * (https://www.apache.org/licenses/LICENSE-2.0); so is this file.
 *
 * Why: JJava's loop slept 50 ms after every look at the socket, the look after a request
 * included, so every request waited 0-50 ms before the kernel saw it (a trivial run, 20 ms of
 * JShell's work, took 70 back to back) and an idle kernel's shell and control threads woke 40
 * times a second. kernelpad's installer compiles this file against the installed jjava.jar
 * (kernelpad.kernels.install) and the kernel's class path puts it before the jar's own class.
 */
package org.dflib.jjava.jupyter.channels;

import org.dflib.jjava.jupyter.kernel.KernelConnectionProperties;
import org.dflib.jjava.jupyter.messages.HMACGenerator;
import org.dflib.jjava.jupyter.messages.Message;
import org.dflib.jjava.shaded.org.slf4j.LoggerFactory;
import org.dflib.jjava.shaded.org.zeromq.SocketType;
import org.dflib.jjava.shaded.org.zeromq.ZMQ;

import java.util.concurrent.atomic.AtomicInteger;

public class ShellChannel extends JupyterSocket {
    /** The longest a poll waits for a request: how soon the loop sees that it must stop. */
    private static final long SHELL_DEFAULT_LOOP_SLEEP_MS = 1000;
    private static final AtomicInteger SHELL_ID = new AtomicInteger();

    private volatile Loop ioloop;

    private final boolean isControl;
    private final JupyterConnection connection;
    private final long sleep;

    public ShellChannel(ZMQ.Context context, HMACGenerator hmacGenerator, boolean isControl, JupyterConnection connection, long sleep) {
        super(context, SocketType.ROUTER, hmacGenerator, LoggerFactory.getLogger(isControl ? "ControlChannel" : "ShellChannel"));
        this.isControl = isControl;
        this.connection = connection;
        // kernelpad: `sleep` is how long a poll waits; a poll that waits not at all would spin.
        this.sleep = sleep > 0 ? sleep : SHELL_DEFAULT_LOOP_SLEEP_MS;
    }

    public ShellChannel(ZMQ.Context context, HMACGenerator hmacGenerator, boolean isControl, JupyterConnection connection) {
        this(context, hmacGenerator, isControl, connection, SHELL_DEFAULT_LOOP_SLEEP_MS);
    }

    private boolean isBound() {
        return this.ioloop != null;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void bind(KernelConnectionProperties connProps) {
        if (this.isBound())
            throw new IllegalStateException("Shell channel already bound");

        String channelThreadName = "Shell-" + SHELL_ID.getAndIncrement();
        String address = JupyterSocket.formatAddress(
                connProps.getTransport(),
                connProps.getIp(),
                isControl ? connProps.getControlPort() : connProps.getShellPort());

        logger.debug("Binding {} to {}.", channelThreadName, address);
        super.bind(address);

        ZMQ.Poller poller = super.ctx.poller(1);
        poller.register(this, ZMQ.Poller.POLLIN);

        // kernelpad: the poll waits (up to `sleep` ms) and the loop does not sleep (0).
        this.ioloop = new Loop(channelThreadName, 0, () -> {
            int events = poller.poll(this.sleep);
            if (events > 0) {
                Message<?> message = super.readMessage();

                ShellHandler handler = connection.getHandler(message.getHeader().getType());
                if (handler != null) {
                    logger.debug("Handling message: {}", message.getHeader().getType().getName());
                    ShellReplyEnvironment env = connection.prepareReplyEnv(this, message);
                    try {
                        handler.handle(env, message);
                    } catch (Exception e) {
                        logger.warn("Unhandled exception handling {}. {} - {}",
                                message.getHeader().getType().getName(),
                                e.getClass().getSimpleName(),
                                e.getLocalizedMessage());
                    } finally {
                        env.resolveDeferrals();
                    }
                    if (env.isMarkedForShutdown()) {
                        logger.debug("{} shutting down connection as environment was marked for shutdown.", channelThreadName);
                        this.connection.close();
                    }
                } else {
                    logger.warn("Unhandled message: {}", message.getHeader().getType().getName());
                }
            }
        });

        this.ioloop.onClose(() -> {
            logger.debug("{} shutdown.", channelThreadName);
            this.ioloop = null;
        });

        this.ioloop.start();

        logger.debug("Polling on {}", channelThreadName);
    }

    @Override
    public void close() {
        // kernelpad: a ZeroMQ socket is not to be closed while another thread polls it. The
        // loop is told to stop, and given its poll's time to leave it (not its own thread: it
        // closes the channels when a shutdown request comes, between two polls).
        Loop loop = this.ioloop;
        if (loop != null) {
            loop.shutdown();
            if (Thread.currentThread() != loop) {
                try {
                    loop.join(this.sleep + 100);
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            }
        }

        super.close();
    }

    @Override
    public void waitUntilClose() {
        Loop loop = this.ioloop;
        if (loop != null) {
            try {
                loop.join();
            } catch (InterruptedException ignored) {
            }
        }
    }
}
